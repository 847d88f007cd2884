"""
End-to-end tests of the ROS 2 graph: real node processes, real DDS, the simulated cell.

The detector stand-in: these tests run the graph with ``detector='truth'`` (the sim bridge
publishes ground-truth inspections) unless the trained detector model is installed, so that
they test the graph (tracking, decisions, rules, arm, belt, operator, fail-safe) and not
the CNN's accuracy. Operator input goes in as text on ``operator/command`` when
``command_parser_node`` is installed, else as parsed intents on ``operator/intent`` (the
supervisor's contract).
"""

import os
import signal
import subprocess
import sys
import time

from conftest import ros_env
from graph_harness import Probe, wait_until
from lepton_robot import paths
from lepton_robot.launcher import Graph, module_available, parser_available, run_sim, sim_graph
from lepton_robot.traceability import report
import pytest

HAVE_PARSER = parser_available()
HAVE_DETECTOR = module_available('lepton_robot.nodes.defect_detector_node') and \
    (paths.models_dir() / 'defect_detector.onnx').is_file()
FAST_ARM = {'manipulation_controller': {'speed_scale': 0.9, 'accel_scale': 0.6}}
MAX_RTF = 1.0   # a loaded 2-core machine: keep the nodes' reaction time small in sim time


def _specs(parts, seed, detector='truth', parser=False, **kw):
    extra = {k: dict(v) for k, v in FAST_ARM.items()}
    for node, params in kw.pop('extra', {}).items():
        extra.setdefault(node, {}).update(params)
    return sim_graph(parts=parts, seed=seed, detector=detector, parser=parser,
                     max_rtf=MAX_RTF, extra=extra, **kw)


def _assert_sorted(summary, n_parts):
    wrong = [p for p in summary['parts'] if p['bin'] != p['expected_bin']]
    assert summary['parts_spawned'] == n_parts
    assert summary['escapes'] == 0, wrong
    assert not wrong, f'{len(wrong)} parts in the wrong place: {wrong}'
    assert summary['sorting_accuracy'] == 1.0


@pytest.mark.slow
def test_seeded_run_puts_every_part_in_its_bin(tmp_path):
    """
    A seeded 20-part run sorts every part into its correct bin with zero escapes.

    Steps: start bridge, supervisor and controller (one process each) on a fresh DDS
    domain; wait for the bridge's ground-truth summary; check every part's final place
    against the expected bin, escapes and that every shutdown left no process behind.
    """
    db = tmp_path / 'trace.db'
    specs = _specs(20, seed=11, db_path=str(db))
    summary, graph, _ = run_sim(specs, timeout_s=420, run_dir=tmp_path / 'run', echo=False)
    assert summary is not None, graph.log_tail('sim_bridge', 40)
    _assert_sorted(summary, 20)
    assert summary['pick_successes'] == 20
    assert summary['real_time_factor'] > 0
    for proc in graph.procs.values():
        assert proc.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    # the traceability database has every decision, pick and the ground truth
    rep = report(db)
    assert rep['picks']['ok'] == 20 and sum(rep['decisions'].values()) >= 20
    assert rep['ground_truth']['parts'] == 20 and rep['ground_truth']['escapes'] == 0


@pytest.mark.slow
def test_operator_commands_change_behaviour(tmp_path):
    """
    Operator input changes what the cell does, and gibberish changes nothing.

    Steps (sim time): a sort rule sends scratched parts to rework; gibberish leaves the
    cell state as it was; stop halts belt and arm within 0.5 s and no decision is made
    while stopped; start resumes; an e-stop latches through stop/pause/estop(false)
    until start; at the end every part is where the rules say, scratched ones in rework.
    """
    specs = _specs(8, seed=4, parser=HAVE_PARSER)    # 3 scratched parts among 8
    graph = Graph(specs, run_dir=tmp_path / 'run', env=ros_env())
    probe = Probe()

    def say(text, intent, **slots):
        if HAVE_PARSER:
            probe.say(text)
        else:
            probe.intent(intent, text, **slots)

    def running_for(t):
        wait_until(lambda: probe.sim_time >= t, 120, f'sim time {t}', graph)

    def comparable(state):
        return {k: state[k] for k in ('state', 'rules', 'speed', 'sensitivity')}
    try:
        graph.start()
        running_for(1.0)
        say('put all scratched parts in the rework bin', 'sort', defect='scratch',
            bin='rework')
        wait_until(lambda: probe.state() and probe.state()['rules'], 30, 'the sort rule',
                   graph)
        assert probe.state()['rules'] == [{'defect': 'scratch', 'bin': 'rework'}]
        before = comparable(probe.state())
        n_feedback = len(probe.feedback)
        say('asdf qwer zxcv', 'unknown')
        wait_until(lambda: len(probe.feedback) > n_feedback, 30, 'a reply to gibberish', graph)
        running_for(probe.sim_time + 1.0)
        assert comparable(probe.state()) == before

        # stop: belt and arm halt within 0.5 s of sim time, no decision while stopped
        running_for(26.0)
        t_stop = probe.sim_time
        say('stop the line', 'stop')
        running_for(t_stop + 5.0)
        assert probe.state()['state'] == 'stopped'
        after = [(t, v) for t, v in probe.belt if t >= t_stop + 0.5]
        assert after and all(v == 0.0 for _, v in after)
        joints = [(t, v) for t, v in probe.joint_speed if t >= t_stop + 0.5]
        assert joints and max(v for _, v in joints) < 0.05, max(v for _, v in joints)
        assert not [d for t, d in probe.decisions if t_stop + 0.5 <= t <= probe.sim_time]
        t_start = probe.sim_time
        say('start the line', 'start')
        wait_until(lambda: probe.state()['state'] == 'running', 30, 'the start', graph)
        wait_until(lambda: any(v > 0 for t, v in probe.belt if t > t_start), 60,
                   'the belt to run again', graph)

        # e-stop latches until an explicit start
        running_for(probe.sim_time + 8.0)
        probe.estop(True)
        wait_until(lambda: probe.state()['state'] == 'estopped', 30, 'the e-stop', graph)
        t_e = probe.sim_time
        say('stop', 'stop')
        say('pause', 'pause')
        probe.estop(False)
        running_for(t_e + 3.0)
        assert probe.state()['state'] == 'estopped'
        assert all(v == 0.0 for t, v in probe.belt if t >= t_e + 0.5)
        assert not [d for t, d in probe.decisions if t_e + 0.5 <= t]
        say('start', 'start')
        wait_until(lambda: probe.state()['state'] == 'running', 30, 'start after e-stop',
                   graph)

        wait_until(lambda: probe.summary is not None, 300, 'the run summary', graph)
        summary = probe.summary
        _assert_sorted(summary, 8)
        scratched = [p for p in summary['parts'] if p['condition'] == 'scratch']
        assert scratched and all(p['bin'] == 'rework' for p in scratched)
    finally:
        probe.close()
        graph.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize('executor', ['single', 'events'])
def test_composed_mode_runs_all_nodes_in_one_process(tmp_path, monkeypatch, executor):
    """
    --composed: the same graph in one process finishes a short run and sorts it.

    On either executor (``LEPTON_EXECUTOR``): the experimental ``EventsExecutor`` must run
    every node's sim-time timers, services and liveliness like the default one.
    """
    monkeypatch.setenv('LEPTON_EXECUTOR', executor)
    specs = _specs(3, seed=2)
    summary, graph, _ = run_sim(specs, composed=True, timeout_s=240,
                                run_dir=tmp_path / 'run', echo=False)
    assert list(graph.procs) == ['composed']
    assert summary is not None, graph.log_tail('composed', 40)
    _assert_sorted(summary, 3)
    # The single-threaded executor takes the in-process path (lepton_robot.ros.intra); the
    # EventsExecutor cannot (no MessageInfo), so its frames come over DDS.
    log = graph.log_tail('composed', 100_000)
    expected = 'in-process' if executor == 'single' else 'over DDS'
    assert f'[supervisor]: /inspection/parts: first message arrived {expected}' in log, log
    assert f'[manipulation_controller]: /decision: first message arrived {expected}' in log


def test_supervisor_holds_when_inspections_stop(tmp_path):
    """
    supervisor_node (real process) holds the line when inspections stop, resumes after.

    Steps: start the node on the wall clock; publish inspections at 10 Hz until the belt
    command is 50 %; stop publishing; expect cell/state held with a 'stale' reason and the
    belt command 0 within the stale time; publish again; expect the line released.
    """
    import json
    import threading

    import rclpy
    from lepton_robot.ros.qos import LATCHED, RELIABLE
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32, String

    proc = subprocess.Popen(
        [sys.executable, '-m', 'lepton_robot.nodes.supervisor_node', '--ros-args',
         '-p', 'stale_after_s:=1.0', '-p', f'db_path:={tmp_path / "trace.db"}',
         '-p', "watch_nodes:=''"],
        env=ros_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('stale_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    states, belt = [], []
    node.create_subscription(String, 'cell/state', lambda m: states.append(json.loads(m.data)),
                             LATCHED)
    node.create_subscription(Float32, 'conveyor/speed_command',
                             lambda m: belt.append(m.data), LATCHED)
    pub = node.create_publisher(String, 'inspection/parts', RELIABLE)
    stop = threading.Event()
    publishing = threading.Event()

    def spin():
        next_pub = 0.0
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.02)
            if publishing.is_set() and time.monotonic() >= next_pub:
                next_pub = time.monotonic() + 0.1
                pub.publish(String(data=json.dumps(
                    {'schema': 'lepton.inspection/1', 'stamp': time.time(), 'parts': []})))
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        publishing.set()
        wait_until(lambda: belt and belt[-1] == 50.0 and states and not states[-1]['held'],
                   30, 'the line to run')
        publishing.clear()
        wait_until(lambda: states[-1]['held'] and belt[-1] == 0.0, 10, 'the stale hold')
        assert 'stale' in states[-1]['hold_reason']
        assert proc.poll() is None
        publishing.set()
        wait_until(lambda: not states[-1]['held'] and belt[-1] == 50.0, 10, 'the release')
    finally:
        stop.set()
        spinner.join()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert proc.returncode == 0, proc.stderr.read()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DETECTOR, reason='the trained detector model is not installed')
def test_killing_the_detector_holds_the_line(tmp_path):
    """
    Killing defect_detector_node holds the line; restarting it resumes.

    Steps: run the graph with the real detector; once decisions flow, SIGKILL the detector;
    expect cell/state held (detector missing, or stale inspections) and the belt at 0 with
    no new decision; restart the detector; expect the hold released and the run to finish.
    """
    specs = _specs(4, seed=4, detector='onnx')
    graph = Graph(specs, run_dir=tmp_path / 'run', env=ros_env())
    graph.required.discard('defect_detector')
    probe = Probe()
    try:
        graph.start()
        wait_until(lambda: probe.decisions, 240, 'a first decision', graph)
        os.killpg(graph.procs['defect_detector'].pid, signal.SIGKILL)
        wait_until(lambda: probe.state() and probe.state()['held'], 60, 'the hold', graph)
        # the liveness watch names the detector (before the inspections go stale)
        reason = probe.state()['hold_reason']
        assert 'defect_detector' in reason or 'stale' in reason, reason
        t_hold = probe.sim_time
        n = len(probe.decisions)
        wait_until(lambda: probe.sim_time > t_hold + 3.0, 60, 'sim time to pass', graph)
        assert len(probe.decisions) == n
        assert all(v == 0.0 for t, v in probe.belt if t > t_hold + 0.5)
        graph.restart_node('defect_detector')
        wait_until(lambda: not probe.state()['held'], 120, 'the release', graph)
        wait_until(lambda: probe.summary is not None, 400, 'the run summary', graph)
        # Nothing escaped, and nothing reached `accept` uninspected or defective.
        assert probe.summary['escapes'] == 0, probe.summary
        for part in probe.summary['parts']:
            if part['bin'] == 'accept':
                assert part['predicted'] is not None, part
                assert part['condition'] == 'ok', part
    finally:
        probe.close()
        graph.shutdown()
