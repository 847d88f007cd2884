"""
The simulated cell: sim bridge, detector, parser, supervisor, controller (``ros2 launch``).

``ros2 launch lepton_robot sim.launch.py parts:=50 seed:=3`` on a machine with ROS 2 and
``launch_ros``; ``lepton-robot sim`` starts the same graph without the ros2 CLI
(``lepton_robot/launcher.py``). Every node but the bridge runs on the bridge's ``/clock``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue

PACKAGE = 'lepton_robot'


def generate_launch_description():
    """Return the launch description of the simulated cell."""
    config = os.path.join(get_package_share_directory(PACKAGE), 'config')
    namespace = LaunchConfiguration('namespace')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    args = [
        DeclareLaunchArgument('executor', default_value='auto',
                              description="every node's rclpy executor: auto (the "
                                          'experimental EventsExecutor where rclpy has it, '
                                          'else SingleThreadedExecutor), single or events'),
        SetEnvironmentVariable('LEPTON_EXECUTOR', LaunchConfiguration('executor')),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of every node and topic (e.g. cell1)'),
        DeclareLaunchArgument('use_sim_time', default_value='true',
                              description='run the nodes on the bridge /clock'),
        DeclareLaunchArgument('model', default_value='',
                              description='detector ONNX model (empty: the shipped one)'),
        DeclareLaunchArgument('backend', default_value='auto',
                              description='detector backend: auto, onnxruntime-cpu, '
                                          'onnxruntime-cuda, tensorrt'),
        DeclareLaunchArgument('parts', default_value='20', description='parts to feed'),
        DeclareLaunchArgument('seed', default_value='0', description='seed of the run'),
        DeclareLaunchArgument('scenario', default_value='fast',
                              description='sim scenario name or YAML path'),
        DeclareLaunchArgument('gui', default_value='false',
                              description='open the PyBullet GUI'),
        DeclareLaunchArgument('summary', default_value='',
                              description='write the run summary JSON to this file'),
        DeclareLaunchArgument('detector', default_value='onnx',
                              description='onnx (defect_detector_node) or truth (ground-truth '
                                          'inspections from the bridge: a graph test double)'),
        DeclareLaunchArgument('db', default_value='',
                              description='traceability SQLite database (empty: none)'),
        DeclareLaunchArgument('supervisor_config',
                              default_value=os.path.join(config, 'supervisor.yaml'),
                              description='supervisor parameters file'),
        DeclareLaunchArgument('controller_config',
                              default_value=os.path.join(config,
                                                         'manipulation_controller.yaml'),
                              description='manipulation controller parameters file'),
        DeclareLaunchArgument('bridge_config',
                              default_value=os.path.join(config, 'sim_bridge.yaml'),
                              description='sim bridge parameters file'),
        DeclareLaunchArgument('detector_config',
                              default_value=os.path.join(config, 'defect_detector.yaml'),
                              description='defect detector parameters file'),
        DeclareLaunchArgument('parser_config',
                              default_value=os.path.join(config, 'command_parser.yaml'),
                              description='command parser parameters file'),
    ]
    truth = PythonExpression(["'", LaunchConfiguration('detector'), "' == 'truth'"])
    onnx = PythonExpression(["'", LaunchConfiguration('detector'), "' == 'onnx'"])
    nodes = [
        Node(package=PACKAGE, executable='sim_bridge_node', name='sim_bridge',
             namespace=namespace, output='screen',
             parameters=[LaunchConfiguration('bridge_config'), {
                 'use_sim_time': False, 'clock_rate_hz': 50.0,
                 'parts': ParameterValue(LaunchConfiguration('parts'), value_type=int),
                 'seed': ParameterValue(LaunchConfiguration('seed'), value_type=int),
                 'scenario': LaunchConfiguration('scenario'),
                 'gui': ParameterValue(LaunchConfiguration('gui'), value_type=bool),
                 'summary_path': LaunchConfiguration('summary'),
                 'truth_inspection': ParameterValue(truth, value_type=bool)}]),
        Node(package=PACKAGE, executable='defect_detector_node', name='defect_detector',
             namespace=namespace, output='screen', condition=IfCondition(onnx),
             parameters=[LaunchConfiguration('detector_config'), {
                 'use_sim_time': use_sim_time, 'model': LaunchConfiguration('model'),
                 'backend': LaunchConfiguration('backend')}]),
        Node(package=PACKAGE, executable='command_parser_node', name='command_parser',
             namespace=namespace, output='screen',
             parameters=[LaunchConfiguration('parser_config'),
                         {'use_sim_time': use_sim_time}]),
        Node(package=PACKAGE, executable='supervisor_node', name='supervisor',
             namespace=namespace, output='screen',
             parameters=[LaunchConfiguration('supervisor_config'), {
                 'use_sim_time': use_sim_time, 'db_path': LaunchConfiguration('db'),
                 # liveness watch: no defect_detector_node runs with detector:=truth
                 'watch_nodes': PythonExpression([
                     "'command_parser, manipulation_controller' if '",
                     LaunchConfiguration('detector'), "' == 'truth' else "
                     "'defect_detector, command_parser, manipulation_controller'"])}]),
        Node(package=PACKAGE, executable='manipulation_controller_node',
             name='manipulation_controller', namespace=namespace, output='screen',
             parameters=[LaunchConfiguration('controller_config'), {
                 'use_sim_time': use_sim_time, 'scenario': LaunchConfiguration('scenario'),
                 'sim_pauses_for_planning': True, 'min_lead_s': 0.2, 'rate_hz': 50.0}]),
    ]
    return LaunchDescription(args + nodes)
