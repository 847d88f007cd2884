"""
The real cell on a robot or Jetson: camera, detector, parser, supervisor, controller.

``ros2 launch lepton_robot robot.launch.py namespace:=cell1 backend:=tensorrt``. The arm
driver (ros2_control with a ``joint_trajectory_controller``) and the conveyor/suction drivers
come with the robot; ``arm_controller_topic`` points the controller at the real controller's
trajectory topic, and ``joint_states`` / ``gripper/command`` / ``conveyor/speed_command``
are the interfaces they serve (see README "The ROS 2 graph").
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue

PACKAGE = 'lepton_robot'


def generate_launch_description():
    """Return the launch description of the real cell."""
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
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock instead of the system clock'),
        DeclareLaunchArgument('model', default_value='',
                              description='detector ONNX model (empty: the shipped one)'),
        DeclareLaunchArgument('backend', default_value='tensorrt',
                              description='detector backend: tensorrt on a Jetson, '
                                          'onnxruntime-cuda, onnxruntime-cpu, auto'),
        DeclareLaunchArgument('camera_device', default_value='/dev/video0',
                              description='V4L2 camera device'),
        DeclareLaunchArgument('camera_info_file', default_value='',
                              description='camera calibration (camera.json or ROS YAML)'),
        DeclareLaunchArgument('arm_controller_topic',
                              default_value='arm_controller/joint_trajectory',
                              description="the real joint_trajectory_controller's topic"),
        DeclareLaunchArgument('db', default_value='',
                              description='traceability SQLite database (empty: none)'),
        DeclareLaunchArgument('camera_config', default_value=os.path.join(config, 'camera.yaml'),
                              description='camera parameters file'),
        DeclareLaunchArgument('supervisor_config',
                              default_value=os.path.join(config, 'supervisor.yaml'),
                              description='supervisor parameters file'),
        DeclareLaunchArgument('controller_config',
                              default_value=os.path.join(config,
                                                         'manipulation_controller.yaml'),
                              description='manipulation controller parameters file'),
        DeclareLaunchArgument('detector_config',
                              default_value=os.path.join(config, 'defect_detector.yaml'),
                              description='defect detector parameters file'),
        DeclareLaunchArgument('parser_config',
                              default_value=os.path.join(config, 'command_parser.yaml'),
                              description='command parser parameters file'),
    ]
    # a node that dies is started again after a second (the supervisor holds the line while
    # the detector, parser or controller is gone); the supervisor owns the cell's state and
    # is not restarted behind the operator's back
    again = {'respawn': True, 'respawn_delay': 1.0}
    nodes = [
        Node(package=PACKAGE, executable='camera_node', name='camera', namespace=namespace,
             output='screen', **again,
             parameters=[LaunchConfiguration('camera_config'), {
                 'use_sim_time': use_sim_time, 'source_type': 'device',
                 'source': LaunchConfiguration('camera_device'),
                 'camera_info_file': LaunchConfiguration('camera_info_file')}]),
        Node(package=PACKAGE, executable='defect_detector_node', name='defect_detector',
             namespace=namespace, output='screen', **again,
             parameters=[LaunchConfiguration('detector_config'), {
                 'use_sim_time': use_sim_time, 'model': LaunchConfiguration('model'),
                 'backend': LaunchConfiguration('backend'),
                 'camera_calibration': LaunchConfiguration('camera_info_file')}]),
        Node(package=PACKAGE, executable='command_parser_node', name='command_parser',
             namespace=namespace, output='screen', **again,
             parameters=[LaunchConfiguration('parser_config'),
                         {'use_sim_time': use_sim_time}]),
        Node(package=PACKAGE, executable='supervisor_node', name='supervisor',
             namespace=namespace, output='screen',
             parameters=[LaunchConfiguration('supervisor_config'), {
                 'use_sim_time': use_sim_time, 'initial_state': 'stopped',
                 'db_path': LaunchConfiguration('db')}]),
        Node(package=PACKAGE, executable='manipulation_controller_node',
             name='manipulation_controller', namespace=namespace, output='screen', **again,
             # a ros2_control joint_trajectory_controller starts a new trajectory when it
             # arrives (no queued follow-on motion as in the sim's follower): no pipelining
             parameters=[LaunchConfiguration('controller_config'),
                         {'use_sim_time': use_sim_time, 'pipeline_picks': False}],
             remappings=[('arm_controller/joint_trajectory',
                          LaunchConfiguration('arm_controller_topic'))]),
    ]
    return LaunchDescription(args + nodes)
