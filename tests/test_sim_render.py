"""Cell rendering: determinism, independence of cells, defects change the part's pixels."""

import hashlib

from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import DEFECTS, SHAPES
from lepton_robot.sim.cell import WorkCell
import numpy as np
import pytest


def _scene(seed):
    cell = WorkCell(seed=seed, with_arm=False)
    cell.feeder_enabled = False
    x0, x1 = cell.view_x_range
    for i, shape in enumerate(SHAPES):
        cell.spawn_part(shape, x=x0 + 0.08 + 0.12 * i, y=0.5)
    cell.step(24)
    return cell


def _digest(img):
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_same_seed_same_images_and_truth():
    a, b = _scene(4), _scene(4)
    try:
        for _ in range(3):
            a.step(24)
            b.step(24)
            assert _digest(a.render()) == _digest(b.render())
        assert [(p.shape, p.color, p.condition, p.position) for p in a.parts()] == \
            [(p.shape, p.color, p.condition, p.position) for p in b.parts()]
    finally:
        a.close()
        b.close()


def test_other_seed_other_image():
    a, b = _scene(1), _scene(2)
    try:
        assert _digest(a.render()) != _digest(b.render())
    finally:
        a.close()
        b.close()


def test_two_cells_side_by_side_do_not_interfere():
    alone = _scene(9)
    ref = [alone.render() for _ in range(2)]
    alone.close()
    a, other = _scene(9), _scene(10)
    try:
        other.set_belt_speed(100)
        other.step(100)
        other.spawn_part('plate')
        imgs = []
        for _ in range(2):
            other.step(7)
            other.render()
            imgs.append(a.render())
        assert all(np.array_equal(x, y) for x, y in zip(ref, imgs))
    finally:
        a.close()
        other.close()


def test_parts_move_with_the_belt():
    cell = _scene(3)
    try:
        cell.set_belt_speed(50)
        x_before = [p.position[0] for p in cell.parts()]
        cell.step_for(1.0)
        moved = [p.position[0] - x for p, x in zip(cell.parts(), x_before)]
        assert np.allclose(moved, cell.belt_speed * 1.0, atol=0.004)
        assert all(p.inspected_frames == 0 for p in cell.parts())
        cell.render()
        assert sum(p.inspected_frames for p in cell.parts()) >= 2
    finally:
        cell.close()


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('defect', DEFECTS)
def test_every_defect_visibly_changes_the_part(shape, defect):
    """Render the same part (same seed) ok and defective: many pixels change strongly."""
    cell = WorkCell(seed=0, with_arm=False)
    try:
        cell.feeder_enabled = False
        x = sum(cell.view_x_range) / 2
        images = {}
        for condition in ('ok', defect):
            cell.clear_parts()
            pid = cell.spawn_part(shape, 'green', condition, x=x, y=0.5, yaw=0.4,
                                  rng=np.random.default_rng(11))
            bbox = cell.part_bbox(pid)[0]
            images[condition] = cell.render(noise=False).astype(int)
        bx, by, bw, bh = (int(v) for v in bbox)
        diff = np.abs(images['ok'] - images[defect]).max(axis=2)[by:by + bh, bx:bx + bw]
        assert bw >= 40 and bh >= 40, 'parts must be at least 40 px across'
        assert int((diff > 40).sum()) >= (12 if defect in ('scratch', 'crack') else 30)
    finally:
        cell.close()


def test_pybullet_render_agrees_with_fast_render():
    """The debug renderer (getCameraImage) uses the same intrinsics and pose."""
    cell = WorkCell(seed=0, with_arm=False)
    try:
        cell.feeder_enabled = False
        x0, x1 = cell.view_x_range
        cell.spawn_part('block', 'red', 'ok', x=x0 + 0.3 * (x1 - x0), y=0.53, yaw=0.3)
        centres = []
        for mode in ('fast', 'pybullet'):
            img = cell.render(mode=mode, noise=False).astype(int)
            red = (img[..., 2] > 120) & (img[..., 1] < 90) & (img[..., 0] < 90)
            assert red.sum() > 500
            ys, xs = np.nonzero(red)
            centres.append((xs.mean(), ys.mean()))
        assert np.hypot(*np.subtract(*centres)) < 4.0
        with pytest.raises(ValueError, match='render mode'):
            cell.render(mode='raytrace')
    finally:
        cell.close()


def test_parts_leaving_the_belt_end_are_recorded():
    cell = WorkCell(seed=0, with_arm=False)
    try:
        cell.feeder_enabled = False
        end = cell.scenario.belt['x_end']
        pid = cell.spawn_part('cylinder', x=end - 0.05, y=0.5)
        cell.set_belt_speed(100)
        cell.step_for(2.0)
        assert cell.part(pid).location == 'belt_end'
        assert cell.part(pid).end_time is not None
        with pytest.raises(ValueError, match='0..100'):
            cell.set_belt_speed(120)
    finally:
        cell.close()


def test_feeder_spawns_the_requested_number_of_parts_deterministically():
    runs = []
    for _ in range(2):
        cell = WorkCell(seed=5, with_arm=False, parts_to_spawn=3)
        try:
            cell.step_for(25.0)
            parts = cell.parts()
            assert len(parts) == 3 and cell.parts_to_spawn == 0
            runs.append([(p.shape, p.color, p.condition, p.position, p.spawn_time)
                         for p in parts])
        finally:
            cell.close()
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 3


def test_gui_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    monkeypatch.setattr('sys.platform', 'linux')
    with pytest.raises(ConfigError, match='needs a display'):
        WorkCell(seed=0, gui=True)


def test_bad_seed_is_a_clear_error():
    with pytest.raises(ConfigError, match='seed'):
        WorkCell(seed=-1, with_arm=False)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('condition', ['ok', 'chip'])
def test_parts_ride_the_belt_stably(shape, condition):
    """Boxes, cylinders and chipped convex meshes stay upright and keep their yaw."""
    cell = WorkCell(seed=1, with_arm=False)
    try:
        cell.feeder_enabled = False
        pid = cell.spawn_part(shape, 'red', condition, x=-0.8, y=0.55, yaw=0.7)
        start = cell.part(pid)
        cell.step_for(2.0)
        end = cell.part(pid)
        assert end.location == 'belt'
        assert abs(end.position[2] - start.position[2]) < 0.003
        assert abs(end.position[1] - start.position[1]) < 0.002
        assert end.position[0] - start.position[0] == pytest.approx(2.0 * cell.belt_speed,
                                                                    abs=0.005)
        assert abs(end.yaw - start.yaw) < 0.02
    finally:
        cell.close()


def test_a_removed_part_keeps_its_truth_but_not_its_texture():
    """Long runs must not keep every sorted part's texture (soak memory growth)."""
    from lepton_robot.sim.cell import WorkCell
    with WorkCell(seed=4, with_arm=False) as cell:
        cell.feeder_enabled = False
        pid = cell.spawn_part('block', 'red', 'scratch', x=-0.5, y=0.5)
        assert cell._parts[pid].appearance.texture.size > 0
        cell.remove_part(pid, 'reject')
        truth = cell.part(pid)
        assert (truth.shape, truth.color, truth.condition, truth.location) == (
            'block', 'red', 'scratch', 'reject')
        assert cell._parts[pid].appearance.texture.size == 0
        cell.render()      # the removed part is not drawn
