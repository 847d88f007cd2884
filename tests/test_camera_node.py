"""Tests of the camera sources and of camera_node as a real process over DDS."""

import contextlib
import shutil
import subprocess
import sys
import threading
import time

from conftest import ros_env
import cv2
from lepton_robot.camera_sources import Backoff, make_source, SourceEnded, SourceError
import numpy as np
import pytest

DEADLINE_S = 30.0


def _write_images(folder, n=3, size=(48, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((*size, 3), 40 * i, np.uint8)
        cv2.imwrite(str(folder / f'{i:03d}.png'), img)


def _write_video(path, n):
    """Write ``n`` 64x48 MJPG frames of grey levels 0, 50, 100..."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), 50 * i, np.uint8))
    writer.release()
    return str(path)


@contextlib.contextmanager
def _camera_node(*params):
    """
    Run camera_node as a process with ``-p`` ``params``; yield it with a listener node.

    Yields ``(proc, node, executor)``: the node lives in a Context of its own, spun by
    ``executor``; the process is stopped and the Context shut down on exit.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    args = [arg for param in params for arg in ('-p', param)]
    proc = subprocess.Popen(
        [sys.executable, '-m', 'lepton_robot.nodes.camera_node', '--ros-args', *args],
        env=ros_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('camera_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield proc, node, executor
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_folder_source_loops_and_ends(tmp_path):
    """A folder source returns images in order, loops, or ends with SourceError."""
    _write_images(tmp_path / 'imgs')
    src = make_source('folder', str(tmp_path / 'imgs'), loop=True)
    src.connect()
    values = [int(src.read()[0, 0, 0]) for _ in range(4)]
    assert values == [0, 40, 80, 0]
    once = make_source('folder', str(tmp_path / 'imgs'), loop=False)
    once.connect()
    for _ in range(3):
        once.read()
    with pytest.raises(SourceError):
        once.read()


def test_video_source_reads_and_loops(tmp_path):
    """A video file is read frame by frame and looped."""
    path = _write_video(tmp_path / 'clip.avi', 3)
    src = make_source('video', path, loop=True)
    src.connect()
    frames = [src.read() for _ in range(5)]
    assert all(f.shape == (48, 64, 3) for f in frames)


@pytest.mark.parametrize('kind, target', [('folder', '/nonexistent/dir'),
                                          ('video', '/nonexistent/clip.mp4'),
                                          ('device', '/dev/video99')])
def test_missing_sources_raise(kind, target):
    """Missing devices, files and folders raise SourceError on connect."""
    with pytest.raises(SourceError):
        make_source(kind, target).connect()


def test_folder_source_skips_unreadable_files(tmp_path):
    """A corrupt file is skipped and remembered; the images after it still come (session 12)."""
    folder = tmp_path / 'imgs'
    _write_images(folder, n=3)
    (folder / '001b.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    (folder / '002b.jpg').write_text('not an image')
    src = make_source('folder', str(folder), loop=True)
    src.connect()
    values = [int(src.read()[0, 0, 0]) for _ in range(4)]
    assert values == [0, 40, 80, 0]             # 000, 001, (001b skipped), 002, (002b), 000
    assert set(src.skipped) == {str(folder / '001b.png'), str(folder / '002b.jpg')}


def test_folder_of_only_unreadable_files_is_an_error(tmp_path):
    """Nothing readable at all is a lost source (the node re-opens it with backoff)."""
    folder = tmp_path / 'bad'
    folder.mkdir()
    (folder / 'a.png').write_bytes(b'')
    src = make_source('folder', str(folder))
    src.connect()
    with pytest.raises(SourceError, match='no readable image'):
        src.read()


def test_a_video_that_is_not_looped_ends(tmp_path):
    """``loop: false``: SourceEnded at the end, not a lost source to re-open."""
    path = _write_video(tmp_path / 'clip.avi', 2)
    src = make_source('video', path, loop=False)
    src.connect()
    src.read()
    src.read()
    with pytest.raises(SourceEnded):
        src.read()


def test_backoff_refuses_delays_that_would_spin():
    """A zero or negative backoff would retry in a busy loop."""
    for initial, maximum in ((0.5, 0.0), (0.5, -1.0), (0.0, 8.0)):
        with pytest.raises(ValueError):
            Backoff(initial, maximum)


def test_backoff_doubles_up_to_maximum():
    """Backoff delays double and saturate; reset starts over."""
    b = Backoff(0.5, 3.0)
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next_delay() == 0.5


@pytest.mark.slow
def test_camera_node_survives_source_loss(tmp_path):
    """
    camera_node streams a folder, reports ERROR when it disappears, resumes when it returns.

    Steps: start the node on a folder of images; receive images; remove the folder;
    wait for an ERROR diagnostic from the node while the process stays alive; restore the
    folder; receive images again.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from lepton_robot.ros.qos import SENSOR
    from sensor_msgs.msg import Image

    folder = tmp_path / 'imgs'
    _write_images(folder)
    with _camera_node('source_type:=folder', f'source:={folder}', 'rate_hz:=20.0',
                      'max_backoff_s:=0.5') as (proc, node, executor):
        images, errors = [], []
        node.create_subscription(Image, 'camera/image_raw', images.append, SENSOR)
        node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: errors.extend(s for s in m.status if s.level == b'\x02'
                                    and 'camera' in s.name), 10)
        stop = threading.Event()
        spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05)
                                                   for _ in iter(stop.is_set, True)])
        spinner.start()

        def wait_for(cond, what):
            deadline = time.monotonic() + DEADLINE_S
            while not cond():
                assert proc.poll() is None, f'camera_node exited: {proc.stderr.read()}'
                assert time.monotonic() < deadline, f'timed out waiting for {what}'
                time.sleep(0.05)
        try:
            wait_for(lambda: len(images) >= 5, 'images')
            assert images[0].encoding == 'bgr8' and images[0].width == 64
            shutil.rmtree(folder)
            wait_for(lambda: errors, 'an ERROR diagnostic')
            n = len(images)
            _write_images(folder)
            wait_for(lambda: len(images) >= n + 5, 'images after the folder came back')
            assert proc.poll() is None
        finally:
            stop.set()
            spinner.join()


def test_camera_node_skips_a_bad_file_and_publishes_uncalibrated_info(tmp_path):
    """
    A folder with a corrupt file: every good image still comes, with a CameraInfo.

    Before session 12 the first unreadable file made the node re-open the folder from its
    first image, so the images after it were never published; without a calibration file no
    ``camera/camera_info`` was published at all. Also: ``rate_hz`` given as an integer.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from lepton_robot.ros.qos import SENSOR
    from sensor_msgs.msg import CameraInfo, Image

    folder = tmp_path / 'imgs'
    _write_images(folder)
    (folder / '000b.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    with _camera_node('source_type:=folder', f'source:={folder}',
                      'rate_hz:=20') as (proc, node, executor):
        values, infos, warns = set(), [], []
        node.create_subscription(Image, 'camera/image_raw',
                                 lambda m: values.add(m.data[0]), SENSOR)
        node.create_subscription(CameraInfo, 'camera/camera_info', infos.append, SENSOR)
        node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: warns.extend(s.message for s in m.status if s.level == b'\x01'
                                   and 'camera' in s.name), 10)
        deadline = time.monotonic() + DEADLINE_S
        while not (values >= {0, 40, 80} and infos and warns):
            assert proc.poll() is None, f'camera_node exited: {proc.stderr.read()}'
            assert time.monotonic() < deadline, (values, len(infos), warns)
            executor.spin_once(timeout_sec=0.05)
        assert (infos[0].width, infos[0].height) == (64, 48) and not any(infos[0].k)
        assert any('unreadable file' in w for w in warns), warns


@pytest.mark.parametrize('value', ['0.0', '-1.0', '1000.0', 'fast'])
def test_camera_node_refuses_a_bad_rate_in_one_line(tmp_path, value):
    """An out-of-range or non-numeric ``rate_hz`` ends the start-up with one clear line."""
    _write_images(tmp_path / 'imgs')
    out = subprocess.run(
        [sys.executable, '-m', 'lepton_robot.nodes.camera_node', '--ros-args',
         '-p', 'source_type:=folder', '-p', f'source:={tmp_path / "imgs"}',
         '-p', f'rate_hz:={value}'], env=ros_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert 'rate_hz must be a number' in out.stderr + out.stdout, out.stderr
    assert 'Traceback' not in out.stderr, out.stderr
