"""
Start the cell's ROS 2 graph without the ``ros2`` CLI, wait for the run, tear it down.

This is what ``lepton-robot sim`` runs (``launch/sim.launch.py`` describes the same graph
for ``ros2 launch``). Every node runs in its own process by default (``composed=True``: all
in one process, one DDS participant, each node on a ``SingleThreadedExecutor`` and thread of
its own; ``lepton_robot.ros.node_main.run_nodes``). Each process gets its own process group,
``--ros-args`` with the namespace and a parameters file (the node's ``config/*.yaml``, then
the run's overrides), and a log file in the run directory.

The launcher itself runs a small rclpy node in its own ``Context``: it publishes the
scheduled operator utterances (``--say T:TEXT`` → ``operator/command`` at sim time T),
prints ``operator/feedback``, and waits for the bridge's ``sim/summary``. Teardown: SIGINT
to every process group, then SIGTERM, then SIGKILL, each with a deadline; then
``fastdds shm clean`` removes shared-memory segments left by killed processes.

ROS-free at import time (rclpy is imported inside the functions that need it).
"""

from dataclasses import dataclass, field
import importlib
import importlib.util
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lepton_robot import paths
from lepton_robot.errors import ConfigError, LeptonError


class LaunchError(LeptonError):
    """The graph could not be started or a node died during the run."""


@dataclass
class NodeSpec:
    """One node of the graph."""

    name: str                      # node name (as in its constructor)
    module: str                    # python module with main() and the node class
    cls: str                       # the Node subclass (for composed mode)
    executable: str                # console script (setup.py NODES, launch files)
    config: Optional[str] = None   # config/<file>.yaml with its defaults
    params: Dict[str, Any] = field(default_factory=dict)
    sim_time: bool = True
    required: bool = True          # the run fails when it dies (and is not respawned)
    respawn: bool = False          # restarted when it dies (``run_sim``), up to a limit


def parse_say(values: Sequence[str]) -> List[Tuple[float, str]]:
    """
    Parse ``--say T:TEXT`` options into ``(sim_time, text)`` sorted by time.

    :raises ConfigError: on a malformed value.
    """
    out = []
    for value in values or ():
        head, sep, text = value.partition(':')
        try:
            t = float(head)
        except ValueError:
            t = None
        if not sep or t is None or t < 0 or not text.strip():
            raise ConfigError(f'--say needs "T:TEXT" with T >= 0 sim seconds, got {value!r}')
        out.append((t, text.strip()))
    return sorted(out, key=lambda x: x[0])


def parse_overrides(values: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """
    Parse ``NODE.PARAM=VALUE`` overrides (VALUE as YAML) into ``{node: {param: value}}``.

    :raises ConfigError: on a malformed value.
    """
    import yaml
    out: Dict[str, Dict[str, Any]] = {}
    for value in values or ():
        key, sep, raw = value.partition('=')
        node, dot, param = key.partition('.')
        if not (sep and dot and node and param):
            raise ConfigError(f'--set needs NODE.PARAM=VALUE, got {value!r}')
        out.setdefault(node, {})[param] = yaml.safe_load(raw)
    return out


def module_available(module: str) -> bool:
    """Return True when a module can be imported (a node another branch provides)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def write_run_calibration(scenario: str, seed: int) -> str:
    """
    Write the simulated run's camera calibration (``camera.json``) and return its path.

    The sim mounts its camera with a seeded jitter; a real cell is calibrated, so the
    detector gets the run's calibration rather than the scenario's nominal camera.
    """
    from lepton_robot.sim.cell import run_camera
    from lepton_robot.sim.scenario import Scenario
    camera = run_camera(Scenario.load(scenario), seed)
    fd, path = tempfile.mkstemp(prefix=f'lepton_camera_s{int(seed)}_', suffix='.json')
    with os.fdopen(fd, 'w') as f:
        json.dump(camera.to_dict(), f)
    return path


def sim_graph(parts: int = 20, seed: int = 0, gui: bool = False, detector: str = 'onnx',
              summary_path: str = '', db_path: str = '', scenario: str = 'default',
              max_rtf: float = 1.0, camera_rate_hz: float = 0.0,
              model: str = '', backend: str = '', parser: bool = True,
              extra: Optional[Dict[str, Dict[str, Any]]] = None) -> List[NodeSpec]:
    """
    Describe the simulated cell's graph.

    :param detector: ``onnx`` (``defect_detector_node``) or ``truth`` (the bridge publishes
        ground-truth inspections: a test double for the rest of the graph).
    :param parser: start ``command_parser_node`` for ``operator/command``.
    :param extra: per-node parameter overrides ``{node_name: {param: value}}``.
    :return: the node specs, bridge first.
    :raises ConfigError: when a requested node is not installed.
    """
    if detector not in ('onnx', 'truth'):
        raise ConfigError(f'detector must be onnx or truth, not {detector!r}')
    nodes = [
        NodeSpec('sim_bridge', 'lepton_robot.nodes.sim_bridge_node', 'SimBridgeNode',
                 'sim_bridge_node', 'sim_bridge.yaml',
                 {'parts': int(parts), 'seed': int(seed), 'gui': bool(gui),
                  'scenario': scenario, 'summary_path': summary_path,
                  'max_rtf': float(max_rtf), 'camera_rate_hz': float(camera_rate_hz),
                  'clock_rate_hz': 50.0, 'db_path': db_path,
                  'truth_inspection': detector == 'truth'}, sim_time=False),
        NodeSpec('supervisor', 'lepton_robot.nodes.supervisor_node', 'SupervisorNode',
                 'supervisor_node', 'supervisor.yaml', {'db_path': db_path}),
        NodeSpec('manipulation_controller', 'lepton_robot.nodes.manipulation_controller_node',
                 'ManipulationControllerNode', 'manipulation_controller_node',
                 'manipulation_controller.yaml',
                 {'scenario': scenario, 'sim_pauses_for_planning': True, 'min_lead_s': 0.2,
                  'rate_hz': 50.0}, respawn=True),
    ]
    if detector == 'onnx':
        if not module_available('lepton_robot.nodes.defect_detector_node') or not (
                model or (paths.models_dir() / 'defect_detector.onnx').is_file()):
            raise ConfigError('the defect detector (node or models/defect_detector.onnx) is '
                              'not installed; use --detector truth to run the graph with '
                              'ground-truth inspections')
        det = {k: v for k, v in (('model', model), ('backend', backend)) if v}
        det['camera_calibration'] = write_run_calibration(scenario, seed)
        nodes.append(NodeSpec('defect_detector', 'lepton_robot.nodes.defect_detector_node',
                              'DefectDetectorNode', 'defect_detector_node',
                              'defect_detector.yaml', det, respawn=True))
    if parser:
        if not parser_available():
            raise ConfigError('command_parser_node or models/command_parser.onnx is not '
                              'installed (needed for --say)')
        nodes.append(NodeSpec('command_parser', 'lepton_robot.nodes.command_parser_node',
                              'CommandParserNode', 'command_parser_node',
                              'command_parser.yaml', {}, respawn=True))
    # the supervisor watches the liveness of the nodes this run starts (config: all of them)
    from lepton_robot.interfaces import WATCHED_NODES
    nodes[1].params['watch_nodes'] = ', '.join(n for n in WATCHED_NODES
                                               if n in {s.name for s in nodes})
    for spec in nodes:
        if spec.config and not (paths.config_dir() / spec.config).is_file():
            spec.config = None
        defaults = dict(_config_defaults(spec.config), **spec.params)
        for param, value in (extra or {}).get(spec.name, {}).items():
            # `--set supervisor.speed=100` reads as an int; a double parameter refuses it
            if isinstance(defaults.get(param), float) and isinstance(value, int) \
                    and not isinstance(value, bool):
                value = float(value)
            spec.params[param] = value
    return nodes


def _config_defaults(config: Optional[str]) -> Dict[str, Any]:
    """Return the ``ros__parameters`` of a node's ``config/*.yaml`` ({} when none)."""
    if not config:
        return {}
    import yaml
    with open(paths.config_dir() / config, encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    for section in data.values():
        if isinstance(section, dict) and isinstance(section.get('ros__parameters'), dict):
            return dict(section['ros__parameters'])
    return {}


def parser_available() -> bool:
    """Return True when command_parser_node and its model are installed."""
    return module_available('lepton_robot.nodes.command_parser_node') and \
        (paths.models_dir() / 'command_parser.onnx').is_file()


def _fqn(namespace: str, name: str) -> str:
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return f'{ns}/{name}'


def ros_args(specs: Sequence[NodeSpec], namespace: str, params_file: Path,
             single: bool) -> List[str]:
    """Return the ``--ros-args`` for one process (one node, or all nodes when composed)."""
    args = ['--ros-args']
    if namespace.strip('/'):
        args += ['-r', f'__ns:=/{namespace.strip("/")}']
    for spec in specs:
        if spec.config:
            args += ['--params-file', str(paths.config_dir() / spec.config)]
    args += ['--params-file', str(params_file)]
    if single and specs[0].sim_time:
        args += ['-p', 'use_sim_time:=true']
    return args


def write_params(specs: Sequence[NodeSpec], namespace: str, path: Path) -> Path:
    """Write one parameters file with a section per node (keyed by its full name)."""
    import yaml
    data = {}
    for spec in specs:
        params = dict(spec.params)
        params['use_sim_time'] = bool(spec.sim_time)
        data[_fqn(namespace, spec.name)] = {'ros__parameters': params}
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    return path


class Graph:
    """
    Run a list of nodes as processes and tear them down cleanly.

    :param specs: the nodes.
    :param namespace: ROS namespace for every node.
    :param run_dir: where logs and parameter files go (a temp dir by default).
    :param composed: run every node in one process.
    :param env: environment of the node processes (default: this process').
    """

    def __init__(self, specs: Sequence[NodeSpec], namespace: str = '',
                 run_dir: Optional[Path] = None, composed: bool = False,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.specs = list(specs)
        self.namespace = namespace
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix='lepton_sim_'))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.composed = composed
        self.env = dict(env or os.environ)
        self.env.setdefault('HOME', str(Path.home()))
        self.env.setdefault('ROS_LOG_DIR', str(self.run_dir / 'ros_log'))
        self.env['PYTHONUNBUFFERED'] = '1'
        self.procs: Dict[str, subprocess.Popen] = {}
        self.required = {'composed'} if composed else {s.name for s in self.specs if s.required}
        self._logs = []

    def _spawn(self, name: str, cmd: List[str]) -> None:
        log = open(self.run_dir / f'{name}.log', 'w', encoding='utf-8')
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=str(self.run_dir))

    def start(self) -> None:
        """Start the processes."""
        params = write_params(self.specs, self.namespace, self.run_dir / 'params.yaml')
        if self.composed:
            spec_file = self.run_dir / 'composed.json'
            spec_file.write_text(json.dumps([[s.module, s.cls, s.sim_time]
                                             for s in self.specs]))
            self._spawn('composed', [sys.executable, '-m', 'lepton_robot.launcher',
                                     '--composed-child', str(spec_file),
                                     *ros_args(self.specs, self.namespace, params, False)])
            return
        for spec in self.specs:
            self._spawn(spec.name, [sys.executable, '-m', spec.module,
                                    *ros_args([spec], self.namespace, params, True)])

    def dead(self) -> List[str]:
        """Return the names of processes that have exited."""
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop_node(self, name: str, timeout: float = 5.0) -> None:
        """Stop one node's process (tests use it to kill the detector)."""
        _terminate({name: self.procs[name]}, timeout)

    def restart_node(self, name: str) -> None:
        """Start a stopped node again with the same arguments."""
        spec = next(s for s in self.specs if s.name == name)
        params = self.run_dir / 'params.yaml'
        self._spawn(spec.name, [sys.executable, '-m', spec.module,
                                *ros_args([spec], self.namespace, params, True)])

    def log_tail(self, name: str, lines: int = 20) -> str:
        """Return the end of a node's log."""
        path = self.run_dir / f'{name}.log'
        if not path.is_file():
            return ''
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])

    def shutdown(self, sigint_s: float = 5.0, sigterm_s: float = 3.0) -> Dict[str, int]:
        """
        Stop every process: SIGINT, then SIGTERM, then SIGKILL (whole process groups).

        :return: exit code per process.
        """
        codes = _terminate(self.procs, sigint_s, sigterm_s)
        for log in self._logs:
            log.close()
        clean_shm(self.env)
        return codes


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(procs: Dict[str, subprocess.Popen], sigint_s: float = 5.0,
               sigterm_s: float = 3.0) -> Dict[str, int]:
    for sig, wait_s in ((signal.SIGINT, sigint_s), (signal.SIGTERM, sigterm_s),
                        (signal.SIGKILL, 5.0)):
        alive = [p for p in procs.values() if p.poll() is None]
        if not alive:
            break
        for proc in alive:
            _signal_group(proc, sig)
        deadline = time.monotonic() + wait_s
        for proc in alive:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for proc in procs.values():
        _signal_group(proc, signal.SIGKILL)   # stragglers of the group, if any
    return {name: p.returncode for name, p in procs.items()}


def clean_shm(env: Optional[Dict[str, str]] = None) -> bool:
    """Run ``fastdds shm clean`` (removes only segments no live process holds)."""
    exe = Path(sys.executable).parent / 'fastdds'
    if not exe.is_file():
        return False
    try:
        subprocess.run([str(exe), 'shm', 'clean'], env=env or dict(os.environ),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return True


class Operator:
    """
    The launcher's own ROS node: scheduled utterances out, feedback and summary in.

    :param namespace: the graph's namespace.
    :param say: ``(sim_time, text)`` pairs to publish on ``operator/command``.
    :param echo: print operator feedback as it arrives.
    """

    def __init__(self, namespace: str, say: Sequence[Tuple[float, str]],
                 echo: bool = True) -> None:
        from lepton_robot.interfaces import TOPIC_CELL_STATE, TOPIC_CLOCK, TOPIC_COMMAND, \
            TOPIC_FEEDBACK
        from lepton_robot.ros.probe import SpinningProbe
        from lepton_robot.ros.qos import LATCHED, RELIABLE
        from rosgraph_msgs.msg import Clock
        from std_msgs.msg import String
        self._String = String
        # The launcher owns SIGINT/SIGTERM (it must tear the graph down): rclpy's handlers
        # would only shut this context down and leave the node processes running.
        self.probe = SpinningProbe('lepton_launcher', namespace, signal_handlers=False)
        self.node = self.probe.node
        self.context = self.probe.context
        self.say = list(say)
        self.echo = echo
        self.sim_time = 0.0
        self.summary: Optional[dict] = None
        self.feedback: List[Tuple[float, str]] = []
        self.states: List[dict] = []
        self.pub_command = self.node.create_publisher(String, TOPIC_COMMAND, RELIABLE)
        self.node.create_subscription(Clock, TOPIC_CLOCK, self._on_clock, 10)
        self.node.create_subscription(String, TOPIC_FEEDBACK, self._on_feedback, RELIABLE)
        self.node.create_subscription(String, 'sim/summary', self._on_summary, LATCHED)
        self.node.create_subscription(String, TOPIC_CELL_STATE, self._on_state, LATCHED)
        self.probe.start()

    def _on_clock(self, msg) -> None:
        self.sim_time = msg.clock.sec + 1e-9 * msg.clock.nanosec
        while self.say and self.say[0][0] <= self.sim_time:
            t, text = self.say.pop(0)
            self.pub_command.publish(self._String(data=text))
            if self.echo:
                print(f'[{self.sim_time:7.2f} s] operator: {text}', flush=True)

    def _on_feedback(self, msg) -> None:
        self.feedback.append((self.sim_time, msg.data))
        if self.echo:
            print(f'[{self.sim_time:7.2f} s] cell: {msg.data}', flush=True)

    def _on_state(self, msg) -> None:
        try:
            self.states.append(json.loads(msg.data))
        except ValueError:
            pass

    def _on_summary(self, msg) -> None:
        self.summary = json.loads(msg.data)

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.probe.close()


def format_summary(s: Dict[str, Any]) -> str:
    """Return a run summary as readable text."""
    def pct(v):
        return '-' if v is None else f'{100.0 * v:.1f} %'
    lat = s.get('latency_ms', {})
    lines = [
        f'seed {s.get("seed")}: {s.get("parts_spawned")} parts spawned, '
        f'{s.get("parts_inspected")} inspected, {s.get("parts_sorted")} sorted',
        f'sorting accuracy {pct(s.get("sorting_accuracy"))}, escapes {s.get("escapes")}, '
        f'false rejects {s.get("false_rejects")}',
        f'picks: {s.get("pick_successes")} of {s.get("pick_attempts")} ok, '
        f'drops {s.get("drops")}',
        f'throughput {s.get("throughput_ppm")} parts/min (sim time), sim {s.get("sim_time_s")} s'
        f' in {s.get("wall_time_s")} s wall, real-time factor {s.get("real_time_factor")}',
    ]
    for stage, q in sorted(lat.items()):
        shown = [(k, q.get(k)) for k in ('p50', 'p95', 'p99') if q and q.get(k) is not None]
        if shown:
            lines.append(f'latency {stage}: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in shown))
    if s.get('respawns'):
        lines.append('restarted after dying: ' + ', '.join(
            f'{name} {n}x' for name, n in sorted(s['respawns'].items())))
    return '\n'.join(lines)


def _raise_on_sigterm():
    """
    Make SIGTERM raise ``KeyboardInterrupt`` so the graph is torn down, not orphaned.

    :return: the previous handler, or None when not in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def _handler(signum, frame):
        raise KeyboardInterrupt(f'signal {signum}')
    return signal.signal(signal.SIGTERM, _handler)


#: restarts of one node per run before a death ends the run (no crash loop)
MAX_RESPAWNS = 3
#: wall seconds between a node's death and its restart
RESPAWN_DELAY_S = 1.0


def run_sim(specs: Sequence[NodeSpec], namespace: str = '', say=(), composed: bool = False,
            timeout_s: float = 600.0, run_dir: Optional[Path] = None,
            echo: bool = True, on_tick=None,
            respawn: bool = True) -> Tuple[Optional[dict], Graph, 'Operator']:
    """
    Start the graph, wait for the bridge's summary (or a node's death, or the timeout).

    A node with ``respawn`` (the detector, the parser, the controller) that dies is started
    again after :data:`RESPAWN_DELAY_S`, as launch's ``respawn=True`` does, up to
    :data:`MAX_RESPAWNS` times per run; the supervisor holds the line meanwhile. Any other
    required node's death (the sim bridge, the supervisor, the composed process), or one
    restart too many, ends the run with :class:`LaunchError`.

    :param on_tick: called as ``on_tick(graph, operator)`` about every 50 ms (tests use it;
        with it, nothing is respawned and no death ends the run).
    :param respawn: restart nodes marked ``respawn`` (``lepton-robot sim --no-respawn``).
    :return: ``(summary or None, graph, operator)``; both are already shut down.
    :raises LaunchError: when a required node dies before the end of the run.
    """
    graph = Graph(specs, namespace, run_dir, composed)
    operator = Operator(namespace, say, echo)
    failed = None
    respawnable = {s.name for s in specs if s.respawn} if respawn and not composed else set()
    restarts: Dict[str, int] = {}
    died_at: Dict[str, float] = {}
    previous_sigterm = _raise_on_sigterm()
    try:
        graph.start()
        deadline = time.monotonic() + timeout_s
        while operator.summary is None and time.monotonic() < deadline:
            dead_required = [n for n in graph.dead() if n in graph.required]
            if dead_required and on_tick is None:
                failed = _respawn(graph, dead_required, respawnable, restarts, died_at)
                if failed is not None:
                    break
            if on_tick is not None:
                on_tick(graph, operator)
            time.sleep(0.05)
    finally:
        # The operator's participant leaves first, while the nodes are still up, so that
        # this process never handles the nodes' participants leaving: Fast DDS 3.2 can
        # deadlock there (its event thread in PDP::check_remote_participant_liveliness,
        # the receive thread in ResourceEvent::unregister_timer, eProsima/Fast-DDS#6502),
        # and rclpy then blocks destroying the operator's publishers with the GIL held, so
        # the run never ends (seen once, in bench_throughput, session 9). The nodes are
        # separate processes: a node stuck the same way is killed by graph.shutdown().
        try:
            operator.close()
        finally:
            graph.shutdown()
            if previous_sigterm is not None:
                signal.signal(signal.SIGTERM, previous_sigterm)
    if failed is not None:
        again = f' after {restarts[failed]} restart(s)' if restarts.get(failed) else ''
        raise LaunchError(f'node {failed} exited during the run{again}; its log:\n'
                          f'{graph.log_tail(failed)}')
    if operator.summary is not None and restarts:
        operator.summary['respawns'] = dict(restarts)
    return operator.summary, graph, operator


def _respawn(graph: Graph, dead: Sequence[str], respawnable: set, restarts: Dict[str, int],
             died_at: Dict[str, float]) -> Optional[str]:
    """Restart dead respawnable nodes once their delay is over; return a fatal one."""
    now = time.monotonic()
    for name in dead:
        if name not in respawnable or restarts.get(name, 0) >= MAX_RESPAWNS:
            return name
        if name not in died_at:
            died_at[name] = now
            code = graph.procs[name].returncode
            print(f'lepton-robot sim: node {name} exited (code {code}); restarting it in '
                  f'{RESPAWN_DELAY_S:.0f} s ({restarts.get(name, 0) + 1}/{MAX_RESPAWNS})',
                  file=sys.stderr, flush=True)
        elif now - died_at[name] >= RESPAWN_DELAY_S:
            del died_at[name]
            restarts[name] = restarts.get(name, 0) + 1
            graph.restart_node(name)
    return None


def _composed_child(spec_file: str) -> int:
    """Run every node of the spec file in this process (``run_nodes``: a thread each)."""
    from lepton_robot.ros.node_main import run_nodes
    specs = json.loads(Path(spec_file).read_text())
    return run_nodes([getattr(importlib.import_module(module), cls)
                      for module, cls, _ in specs], sys.argv)


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--composed-child':
        raise SystemExit(_composed_child(sys.argv[2]))
    raise SystemExit('usage: python -m lepton_robot.launcher --composed-child SPEC.json')


# --- the ``lepton-robot sim`` main job (graph path) -----------------------------------------
def add_graph_arguments(parser) -> None:
    """
    Add the graph-only options of ``lepton-robot sim`` to its argparse parser.

    ``--parts``, ``--seed``, ``--scenario``, ``--gui``, ``--summary`` and ``--say`` are the
    command's own (``lepton_robot/commands/sim.py``).
    """
    parser.add_argument('--composed', action='store_true',
                        help='run every node in one process (an executor thread each)')
    parser.add_argument('--executor', choices=('auto', 'single', 'events'), default='',
                        help="the nodes' rclpy executor: auto (the default: a process of "
                             'one node on the experimental EventsExecutor where rclpy has '
                             'it, a composed one on SingleThreadedExecutors), single or '
                             'events; sets LEPTON_EXECUTOR for the node processes')
    parser.add_argument('--detector', choices=('onnx', 'truth'), default='onnx',
                        help='onnx: defect_detector_node (default); truth: ground-truth '
                             'inspections from the sim (a test double for the graph)')
    parser.add_argument('--model', default='', help='detector model file (default: shipped)')
    parser.add_argument('--backend', default='', help='detector inference backend')
    parser.add_argument('--namespace', default='', help='ROS namespace of the graph')
    parser.add_argument('--db', default='', metavar='DB',
                        help='write the traceability SQLite database here')
    parser.add_argument('--max-rtf', type=float, default=1.0,
                        help='largest real-time factor (0 = as fast as possible)')
    parser.add_argument('--camera-rate', type=float, default=0.0,
                        help='camera rate in sim Hz (0 = scenario rate)')
    parser.add_argument('--timeout', type=float, default=0.0,
                        help='wall-clock limit in s (default: 60 + 20 s per part)')
    parser.add_argument('--run-dir', default='', help='keep node logs here (default: temp)')
    parser.add_argument('--quiet', action='store_true', help='do not echo operator dialogue')
    parser.add_argument('--no-respawn', dest='respawn', action='store_false',
                        help='end the run when the detector, parser or controller dies '
                             f'(default: restart it, up to {MAX_RESPAWNS} times)')
    parser.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                        help='override a node parameter, e.g. manipulation_controller.'
                             'speed_scale=0.8 (repeatable; VALUE parsed as YAML)')


def run_graph_command(args) -> Dict[str, Any]:
    """
    Run the simulated cell's graph for ``lepton-robot sim`` and return the run summary.

    :raises LaunchError: when a node dies or no summary arrives in time.
    """
    say = parse_say(args.say)
    if getattr(args, 'executor', ''):
        os.environ['LEPTON_EXECUTOR'] = args.executor
    run_dir = Path(args.run_dir).resolve() if args.run_dir else None
    extra = parse_overrides(getattr(args, 'set', []))
    specs = sim_graph(parts=args.parts, seed=args.seed, gui=args.gui, detector=args.detector,
                      db_path=str(Path(args.db).resolve()) if args.db else '',
                      scenario=args.scenario, max_rtf=args.max_rtf,
                      camera_rate_hz=args.camera_rate, model=args.model,
                      backend=args.backend, parser=bool(say) or parser_available(),
                      extra=extra)
    timeout = args.timeout or 60.0 + 20.0 * args.parts
    print(f'lepton-robot sim: {len(specs)} nodes ({", ".join(s.name for s in specs)}), '
          f'{"one process" if args.composed else "one process each"}, '
          f'{args.parts} parts, seed {args.seed}', flush=True)
    from lepton_robot.domain import ros_domain
    with ros_domain() as domain:
        how = ('chosen: no other lepton-robot run on this host uses it' if domain['chosen']
               else 'from the environment')
        print(f'lepton-robot sim: ROS_DOMAIN_ID={domain["domain"]} ({how}), discovery '
              f'{os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "default"}', flush=True)
        if domain['note']:
            print(f'lepton-robot sim: warning: {domain["note"]}', file=sys.stderr, flush=True)
        summary, graph, _ = run_sim(specs, args.namespace, say, args.composed, timeout,
                                    run_dir, echo=not args.quiet, respawn=args.respawn)
    if summary is None:
        raise LaunchError(f'no run summary within {timeout:.0f} s wall; node logs in '
                          f'{graph.run_dir}')
    print(format_summary(summary), flush=True)
    return summary
