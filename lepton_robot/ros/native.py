"""
Native objects for the in-process path (:meth:`IntraPublisher.publish_native`).

A :class:`LocalImage` is a camera frame as the numpy array it already is, with the fields a
``sensor_msgs/Image`` reader uses (``header``, ``height``, ``width``, ``encoding``,
``step``, ``data``). The composed detector reads it exactly as it reads a message
(:func:`lepton_robot.detector.image_msg.image_to_bgr` checks it the same way), and
:meth:`LocalImage.to_msg` builds the real message only for subscribers that need one.
"""

from lepton_robot.detector.image_msg import bgr_to_data
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header


class LocalImage:
    """
    A BGR frame shaped like a ``sensor_msgs/Image`` (``bgr8``), sharing the frame's memory.

    ``data`` is a read-only flat ``uint8`` view of the (contiguous) frame: subscribers share
    it and must not modify it, as with a shared message.
    """

    __slots__ = ('header', 'height', 'width', 'encoding', 'step', 'data')

    def __init__(self, header: Header, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame)
        self.header = header
        self.height, self.width = int(frame.shape[0]), int(frame.shape[1])
        self.encoding = 'bgr8'
        self.step = self.width * 3
        data = frame.reshape(-1).view(np.uint8)     # a view: the frame itself stays writable
        data.flags.writeable = False
        self.data = data

    def to_msg(self) -> Image:
        """Return the ``sensor_msgs/Image`` (one copy of the pixels, as the camera made)."""
        msg = Image()
        msg.header = self.header
        msg.height, msg.width = self.height, self.width
        msg.encoding = self.encoding
        msg.step = self.step
        msg.data = bgr_to_data(self.data)
        return msg
