"""
Turn the fields of a ``sensor_msgs/Image`` into a BGR array, refusing anything malformed.

Pure numpy (no ROS, no cv_bridge, which is not available from PyPI): the node passes the
message's fields, tests pass plain values. Every way a frame can be wrong raises
:class:`~lepton_robot.errors.ImageError` with the reason, so the node can count it, raise
diagnostics and move on to the next frame.
"""

import array
from typing import Any

from lepton_robot.errors import ImageError
import numpy as np

#: encoding -> (channels, conversion to BGR: channel order or None for as-is)
ENCODINGS = {
    'bgr8': (3, None),
    'rgb8': (3, (2, 1, 0)),
    'bgra8': (4, (0, 1, 2)),
    'rgba8': (4, (2, 1, 0)),
}

#: 4K UHD: anything larger is refused before a copy is made.
DEFAULT_MAX_PIXELS = 3840 * 2160


def image_to_bgr(height: int, width: int, encoding: str, step: int, data: Any,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """
    Validate image fields and return an ``height x width x 3`` uint8 BGR array.

    A ``bgr8`` frame without row padding comes back as a read-only view of ``data`` (no
    copy: the message may be shared by in-process subscribers, see
    ``lepton_robot.ros.intra``); anything else is a new array.

    :param height: rows.
    :param width: columns.
    :param encoding: ``bgr8`` (the contract), ``rgb8``, ``bgra8`` or ``rgba8``.
    :param step: bytes per row (may include padding).
    :param data: the pixel bytes (bytes, bytearray, array.array or memoryview).
    :param max_pixels: frames with more pixels are refused.
    :raises ImageError: empty frame, frame too large, unsupported encoding, step too small
        for the width, or a data size that is not ``step * height``.
    """
    try:
        height, width, step = int(height), int(width), int(step)
    except (TypeError, ValueError) as exc:
        raise ImageError(f'bad image dimensions: {exc}') from exc
    if height <= 0 or width <= 0:
        raise ImageError(f'empty image ({width}x{height})')
    if height * width > max_pixels:
        raise ImageError(f'image too large: {width}x{height} = {width * height} pixels '
                         f'(limit {max_pixels})')
    enc = str(encoding).lower()
    if enc not in ENCODINGS:
        raise ImageError(f'unsupported encoding {encoding!r} (need one of '
                         f'{", ".join(ENCODINGS)}; colour is required for classification)')
    channels, order = ENCODINGS[enc]
    if step < width * channels:
        raise ImageError(f'step {step} is smaller than width*channels = {width * channels} '
                         f'for {enc}')
    try:
        buf = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageError(f'image data is not a byte buffer: {exc}') from exc
    if buf.size != step * height:
        raise ImageError(f'data size {buf.size} != step*height = {step * height}')
    rows = buf.reshape(height, step)[:, :width * channels].reshape(height, width, channels)
    if order is None:
        if step == width * channels:    # the common case: a read-only view, no copy
            rows.flags.writeable = False
            return rows
        return rows.copy()
    return np.ascontiguousarray(rows[..., list(order)])


def bgr_to_data(image: np.ndarray) -> array.array:
    """
    Return an image's bytes as the ``array.array('B')`` that ``Image.data`` keeps.

    One copy (assigning ``bytes`` to the field makes two: ``tobytes`` and the field's own
    ``array.array``).
    """
    out = array.array('B')
    out.frombytes(np.ascontiguousarray(image).data)
    return out
