"""
Frame sources for the camera node: a V4L2/USB device, a video file, an image folder.

Plain OpenCV, no ROS. Every source yields BGR ``uint8`` frames and raises ``SourceError``
when it is lost (device unplugged, file gone, folder emptied); the node then reports an
ERROR diagnostic and re-opens it with backoff. A video or folder that is not looped raises
``SourceEnded`` at its end: the node stops there instead of re-opening it. A folder skips
files it cannot read (``FolderSource.skipped``) and goes on with the next one.
"""

from pathlib import Path
from typing import Dict, List, Optional, Union

from lepton_robot.errors import LeptonError
import numpy as np

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
SOURCE_TYPES = ('device', 'video', 'folder')


class SourceError(LeptonError):
    """A frame source cannot be opened or stopped delivering frames."""


class SourceEnded(SourceError):
    """A video or folder that is not looped has delivered its last frame."""


class FrameSource:
    """Base class: ``connect()``, ``read() -> frame``, ``close()``."""

    description = 'source'

    def connect(self) -> None:
        """Open the source; raise SourceError when it is not there."""

    def read(self) -> np.ndarray:
        """Return the next BGR frame; raise SourceError when the source is lost or ended."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the source."""


class _CaptureSource(FrameSource):
    def __init__(self, target: Union[int, str], loop: bool = False,
                 width: int = 0, height: int = 0) -> None:
        self.target = target
        self.loop = loop
        self.width, self.height = int(width), int(height)
        self._cap = None
        self.description = f'{type(self).__name__} {target}'

    def connect(self) -> None:
        import cv2
        if isinstance(self.target, str) and not self.target.startswith('/dev/') \
                and not Path(self.target).is_file():
            raise SourceError(f'no such file: {self.target}')
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f'cannot open {self.description}')
        if self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self._cap = cap

    def read(self) -> np.ndarray:
        import cv2
        if self._cap is None:
            raise SourceError(f'{self.description} is not open')
        ok, frame = self._cap.read()
        if not ok and isinstance(self, VideoSource):
            if not self.loop:
                raise SourceEnded(f'{self.description}: ended (loop is off)')
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f'{self.description}: no frame (lost or ended)')
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceSource(_CaptureSource):
    """A V4L2/USB camera: ``/dev/videoN`` or an index."""


class VideoSource(_CaptureSource):
    """A video file, optionally looped."""


class FolderSource(FrameSource):
    """
    The images of a folder in name order, optionally looped.

    :param folder: the directory.
    :param loop: start again after the last image (else the source ends).
    """

    def __init__(self, folder: Union[str, Path], loop: bool = True) -> None:
        self.folder = Path(folder)
        self.loop = loop
        self._files: List[Path] = []
        self._i = 0
        self.description = f'folder {folder}'
        #: files skipped because they could not be read: path -> reason (the last 100)
        self.skipped: Dict[str, str] = {}

    def connect(self) -> None:
        self._list()
        self._i = 0

    def _list(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f'no such folder: {self.folder}')
        self._files = sorted(p for p in self.folder.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f'no images in {self.folder}')

    def read(self) -> np.ndarray:
        """
        Return the next readable image; skip unreadable files (remembered in ``skipped``).

        At the end of the list the folder is listed again (images added or removed on the
        way count) when looping; otherwise :class:`SourceEnded`. A pass that finds no
        readable image at all raises :class:`SourceError`.
        """
        import cv2
        tried = 0
        while True:
            if self._i >= len(self._files):
                if not self.loop:
                    raise SourceEnded(f'{self.description}: ended after its last image '
                                      f'(loop is off)')
                self._list()
                self._i = 0
            if tried >= len(self._files):
                raise SourceError(f'no readable image in {self.folder} '
                                  f'({len(self.skipped)} file(s) skipped)')
            path = self._files[self._i]
            self._i += 1
            tried += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            if not self.folder.is_dir():
                raise SourceError(f'no such folder: {self.folder}')
            if len(self.skipped) >= 100:
                self.skipped.pop(next(iter(self.skipped)))
            self.skipped[str(path)] = 'gone' if not path.exists() else 'not a readable image'


def make_source(source_type: str, source: str, loop: bool = True, width: int = 0,
                height: int = 0) -> FrameSource:
    """
    Build a frame source.

    :param source_type: ``device``, ``video`` or ``folder``.
    :param source: ``/dev/video0`` or ``0`` for a device, a file, or a folder.
    :raises SourceError: for an unknown source type.
    """
    if source_type == 'device':
        target: Union[int, str] = int(source) if str(source).isdigit() else str(source)
        return DeviceSource(target, width=width, height=height)
    if source_type == 'video':
        return VideoSource(str(source), loop=loop)
    if source_type == 'folder':
        return FolderSource(source, loop=loop)
    raise SourceError(f'unknown source type {source_type!r} (one of {SOURCE_TYPES})')


class Backoff:
    """
    Exponential backoff for re-opening a lost source.

    :param initial: first delay (s).
    :param maximum: largest delay (s).
    """

    def __init__(self, initial: float = 0.5, maximum: float = 8.0) -> None:
        if not initial > 0 or not maximum > 0:
            raise ValueError(f'backoff delays must be > 0 s (initial {initial}, '
                             f'maximum {maximum})')
        self.initial, self.maximum = float(initial), max(float(initial), float(maximum))
        self.delay: Optional[float] = None

    def next_delay(self) -> float:
        """Return the next delay and double it (up to the maximum)."""
        self.delay = self.initial if self.delay is None else min(self.maximum, self.delay * 2)
        return self.delay

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.delay = None
