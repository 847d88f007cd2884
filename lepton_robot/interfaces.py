"""
The external contract: topic names, canonical vocabularies and ``lepton.*`` JSON payloads.

This is the one module that (de)serialises the structured payloads that travel as JSON in
``std_msgs/String`` (see ``shared/spec/interfaces.md``), so that a later typed interface
replaces them in one place. It imports no ROS.
"""

import json
import math
from typing import Any, Dict, Iterable, Mapping, Optional

from lepton_robot.errors import SchemaError

# --- Topics (relative, so a launch namespace prefixes them) -------------------------------
TOPIC_IMAGE = 'camera/image_raw'
TOPIC_CAMERA_INFO = 'camera/camera_info'
TOPIC_INSPECTION = 'inspection/parts'
TOPIC_MARKERS = 'inspection/markers'
TOPIC_COMMAND = 'operator/command'
TOPIC_INTENT = 'operator/intent'
TOPIC_FEEDBACK = 'operator/feedback'
TOPIC_ESTOP = 'estop'
TOPIC_CELL_STATE = 'cell/state'
TOPIC_DECISION = 'decision'
TOPIC_PICK_RESULT = 'manipulation/result'
TOPIC_JOINT_TRAJECTORY = 'arm_controller/joint_trajectory'
TOPIC_JOINT_STATES = 'joint_states'
TOPIC_CLOCK = '/clock'
TOPIC_DIAGNOSTICS = '/diagnostics'
# Cell-internal topics (extensions of the contract, documented in README "The ROS 2 graph"):
#: std_msgs/Float32, percent 0..100 of max belt speed; supervisor -> sim bridge / conveyor.
TOPIC_BELT_SPEED = 'conveyor/speed_command'
#: std_msgs/String JSON {"command": "halt" | "resume" | "home", "reason"?}; supervisor ->
#: manipulation controller.
TOPIC_MANIPULATION_COMMAND = 'manipulation/command'
#: std_msgs/Bool, true = suction on; controller -> sim bridge / tool driver.
TOPIC_GRIPPER = 'gripper/command'
#: std_msgs/Bool, true = the vacuum holds a part; sim bridge / tool driver -> controller.
TOPIC_GRIPPER_STATE = 'gripper/state'
#: sensor_msgs/JointState with one joint 'conveyor': position = belt travel (m), velocity
#: (m/s); the conveyor's encoder; sim bridge / conveyor driver -> supervisor, controller.
TOPIC_BELT_STATE = 'conveyor/state'
#: std_msgs/String JSON {"part_id": int | null}: the pick in progress (transient local);
#: controller -> supervisor.
TOPIC_MANIPULATION_ACTIVE = 'manipulation/active'
#: std_msgs/Bool, true while the controller plans; the sim bridge pauses the simulated
#: time meanwhile (``sync_planning``), as it waits for the detector (sim only).
TOPIC_MANIPULATION_PLANNING = 'manipulation/planning'
#: std_msgs/String JSON {"node": name, "t": sim seconds}: how far a node's clock has got;
#: the sim bridge waits at each camera frame for the nodes that report it (sim only).
TOPIC_SIM_ACK = 'sim/ack'
#: Prefix of each node's liveness topic ``heartbeat/<node name>``: std_msgs/String JSON
#: {"node": name, "t": seconds of the node's clock}, every ``HEARTBEAT_PERIOD_S`` of that
#: clock, reliable, depth 1, DDS liveliness AUTOMATIC with lease ``HEARTBEAT_LEASE_S``
#: (wall clock, asserted by the middleware); watched nodes -> supervisor.
TOPIC_HEARTBEAT_PREFIX = 'heartbeat/'
HEARTBEAT_PERIOD_S = 0.1
HEARTBEAT_LEASE_S = 0.1
#: The nodes whose loss holds the line by default (supervisor ``watch_nodes``).
WATCHED_NODES = ('defect_detector', 'command_parser', 'manipulation_controller')


def heartbeat_topic(node_name: str) -> str:
    """Return the liveness topic of a node (relative: a namespace prefixes it)."""
    return TOPIC_HEARTBEAT_PREFIX + node_name


# --- Schemas -------------------------------------------------------------------------------
SCHEMA_INSPECTION = 'lepton.inspection/1'
SCHEMA_INTENT = 'lepton.intent/1'
SCHEMA_DECISION = 'lepton.decision/1'
SCHEMA_PICK_RESULT = 'lepton.pick_result/1'
SCHEMA_CELL_STATE = 'lepton.cell_state/1'

# --- Vocabularies (cell.md, commands.md) --------------------------------------------------
SHAPES = ('block', 'cylinder', 'plate')
COLORS = ('red', 'green', 'blue', 'yellow', 'gray')
CONDITIONS = ('ok', 'scratch', 'crack', 'stain', 'chip')
DEFECTS = CONDITIONS[1:]
BINS = ('accept', 'reject', 'rework')
CELL_STATES = ('running', 'paused', 'stopped', 'estopped')
ACTIONS = ('pick_place', 'pass', 'hold')

INTENTS = ('start', 'pause', 'stop', 'emergency_stop', 'sort', 'pick', 'inspect',
           'set_speed', 'set_sensitivity', 'status', 'home', 'unknown')
SLOT_VALUES: Dict[str, Optional[tuple]] = {
    'defect': ('scratch', 'crack', 'stain', 'chip', 'any', 'none'),
    'color': COLORS,
    'shape': SHAPES,
    'bin': BINS,
    'position': ('next', 'last', 'left', 'right', 'nearest'),
    'part_id': None,     # integer >= 0
    'value': None,       # number 0..100
    'direction': ('up', 'down'),
    'query': ('counts', 'defect_rate', 'state', 'last_part'),
}
INTENT_SLOTS: Dict[str, tuple] = {
    'start': (), 'pause': (), 'stop': (), 'emergency_stop': (), 'home': (), 'unknown': (),
    'sort': ('defect', 'color', 'shape', 'bin'),
    'pick': ('color', 'shape', 'position', 'part_id', 'bin', 'defect'),
    'inspect': ('part_id', 'position', 'color', 'shape'),
    'set_speed': ('value', 'direction'),
    'set_sensitivity': ('value', 'direction'),
    'status': ('query',),
}
#: how an ``unknown`` intent's ``reason`` opens when the parser refused a command on purpose
#: (the supervisor answers these with their own reply)
REASON_NEGATED_COMMAND = 'negated command'
REASON_RULE_EDITING = 'rule editing'
REASON_NO_SUCH_PARTS = 'no such parts'


def dumps(payload: Mapping[str, Any]) -> str:
    """Serialise a payload to compact JSON (NaN/Inf are refused: they are not JSON)."""
    try:
        return json.dumps(payload, separators=(',', ':'), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f'payload is not serialisable as JSON: {exc}') from exc


def loads(text: str, schema: Optional[str] = None) -> Dict[str, Any]:
    """
    Parse a JSON payload and check its ``schema`` key.

    :param text: the JSON text (``std_msgs/String.data``).
    :param schema: the expected ``schema`` value, or None to accept any ``lepton.*`` payload.
    :return: the decoded object, validated by its schema's validator.
    :raises SchemaError: if the text is not a JSON object of the expected schema.
    """
    try:
        obj = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f'not JSON: {exc}') from exc
    return check(obj, schema)


def check(obj: Any, schema: Optional[str] = None) -> Dict[str, Any]:
    """
    Validate a decoded payload (what :func:`loads` does after parsing the JSON).

    Used directly on payloads that arrive as objects in the same process
    (``IntraPublisher.publish_native``), so they pass the same checks as JSON text.

    :return: ``obj``.
    :raises SchemaError: if it is not an object of the expected, valid schema.
    """
    if not isinstance(obj, dict):
        raise SchemaError('payload is not a JSON object')
    got = obj.get('schema')
    if schema is not None and got != schema:
        raise SchemaError(f'expected schema {schema!r}, got {got!r}')
    validator = _VALIDATORS.get(got)
    if validator is None:
        raise SchemaError(f'unknown schema {got!r}')
    validator(obj)
    return obj


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise SchemaError(message)


def _numbers(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _finite_numbers(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in values)


def validate_intent(obj: Mapping[str, Any]) -> None:
    """
    Check a ``lepton.intent/1`` payload against commands.md.

    :raises SchemaError: on any violation.
    """
    _require(obj.get('schema') == SCHEMA_INTENT, 'schema must be lepton.intent/1')
    _require(isinstance(obj.get('text'), str), 'text must be a string')
    intent = obj.get('intent')
    _require(intent in INTENTS, f'unknown intent {intent!r}')
    conf = obj.get('confidence')
    _require(_finite_numbers([conf]) and 0.0 <= conf <= 1.0, 'confidence must be in 0..1')
    slots = obj.get('slots')
    _require(isinstance(slots, dict), 'slots must be an object')
    for key, value in slots.items():
        _require(key in INTENT_SLOTS[intent], f'slot {key!r} not allowed for intent {intent!r}')
        allowed = SLOT_VALUES[key]
        if key == 'part_id':
            _require(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                     'part_id must be an integer >= 0')
        elif key == 'value':
            _require(_finite_numbers([value]) and 0 <= value <= 100, 'value must be 0..100')
        else:
            _require(value in allowed, f'slot {key}={value!r} is not canonical')


def make_intent(text: str, intent: str, slots: Mapping[str, Any], confidence: float,
                **extra: Any) -> Dict[str, Any]:
    """Build and validate a ``lepton.intent/1`` payload (extra keys are allowed)."""
    obj = {'schema': SCHEMA_INTENT, 'text': text, 'intent': intent, 'slots': dict(slots),
           'confidence': float(confidence), **extra}
    validate_intent(obj)
    return obj


def validate_inspection(obj: Mapping[str, Any]) -> None:
    """
    Check a ``lepton.inspection/1`` payload.

    :raises SchemaError: on any violation.
    """
    _require(obj.get('schema') == SCHEMA_INSPECTION, 'schema must be lepton.inspection/1')
    _require(_finite_numbers([obj.get('stamp')]), 'stamp must be a number')
    parts = obj.get('parts')
    _require(isinstance(parts, list), 'parts must be a list')
    for part in parts:
        _require(isinstance(part, dict), 'each part must be an object')
        bbox = part.get('bbox')
        _require(isinstance(bbox, list) and len(bbox) == 4 and _finite_numbers(bbox),
                 'bbox must be [x, y, w, h]')
        _require(part.get('label') in CONDITIONS, f'unknown label {part.get("label")!r}')
        _require(_finite_numbers([part.get('score')]), 'score must be a number')
        probs = part.get('probs', {})
        _require(isinstance(probs, dict) and set(probs) <= set(CONDITIONS)
                 and _finite_numbers(probs.values()),
                 'probs must map conditions to probabilities')
        if 'color' in part:
            _require(part['color'] in COLORS, f'unknown color {part["color"]!r}')
        if 'shape' in part:
            _require(part['shape'] in SHAPES, f'unknown shape {part["shape"]!r}')
        if part.get('position') is not None:
            pos = part['position']
            _require(isinstance(pos, list) and len(pos) == 3 and _finite_numbers(pos),
                     'position must be [x, y, z]')


def validate_decision(obj: Mapping[str, Any]) -> None:
    """
    Check a ``lepton.decision/1`` payload.

    :raises SchemaError: on any violation.
    """
    _require(obj.get('schema') == SCHEMA_DECISION, 'schema must be lepton.decision/1')
    _require(isinstance(obj.get('part_id'), int), 'part_id must be an integer')
    action = obj.get('action')
    _require(action in ACTIONS, f'unknown action {action!r}')
    if action == 'pick_place':
        _require(obj.get('bin') in BINS, f'unknown bin {obj.get("bin")!r}')
        pose = obj.get('pick_pose')
        # numbers, not necessarily finite: the controller refuses NaN/inf with a pick result
        _require(isinstance(pose, list) and len(pose) == 4 and _numbers(pose),
                 'pick_pose must be [x, y, z, yaw], four numbers')
    if 'stamp' in obj:
        _require(_finite_numbers([obj['stamp']]), 'stamp must be a number')
    if 'belt_velocity' in obj:
        vel = obj['belt_velocity']
        _require(isinstance(vel, list) and len(vel) == 3 and _finite_numbers(vel),
                 'belt_velocity must be [vx, vy, vz], three numbers')
    _require(isinstance(obj.get('reason', ''), str), 'reason must be a string')


def validate_pick_result(obj: Mapping[str, Any]) -> None:
    """
    Check a ``lepton.pick_result/1`` payload.

    :raises SchemaError: on any violation.
    """
    _require(obj.get('schema') == SCHEMA_PICK_RESULT, 'schema must be lepton.pick_result/1')
    _require(isinstance(obj.get('part_id'), int), 'part_id must be an integer')
    _require(isinstance(obj.get('ok'), bool), 'ok must be a boolean')
    _require(obj.get('error') is None or isinstance(obj.get('error'), str),
             'error must be null or a string')


def validate_cell_state(obj: Mapping[str, Any]) -> None:
    """
    Check a ``lepton.cell_state/1`` payload.

    :raises SchemaError: on any violation.
    """
    _require(obj.get('schema') == SCHEMA_CELL_STATE, 'schema must be lepton.cell_state/1')
    _require(obj.get('state') in CELL_STATES, f'unknown state {obj.get("state")!r}')
    _require(isinstance(obj.get('rules'), list), 'rules must be a list')
    _require(_finite_numbers([obj.get('speed'), obj.get('sensitivity')]),
             'speed and sensitivity must be numbers')
    _require(isinstance(obj.get('counts'), dict), 'counts must be an object')


_VALIDATORS = {
    SCHEMA_INTENT: validate_intent,
    SCHEMA_INSPECTION: validate_inspection,
    SCHEMA_DECISION: validate_decision,
    SCHEMA_PICK_RESULT: validate_pick_result,
    SCHEMA_CELL_STATE: validate_cell_state,
}
