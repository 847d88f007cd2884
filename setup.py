"""Packaging for lepton_robot (ament_python: works with pip and with colcon)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'lepton_robot'


def _tree(src, dst_root):
    """Return data_files entries installing every file under ``src`` into ``dst_root``."""
    entries = {}
    for path in sorted(glob(os.path.join(src, '**', '*'), recursive=True)):
        if os.path.isfile(path) and '__pycache__' not in path:
            rel_dir = os.path.dirname(os.path.relpath(path, src))
            entries.setdefault(os.path.join(dst_root, rel_dir), []).append(path)
    return sorted(entries.items())


SHARE = os.path.join('share', PACKAGE)

# Node executables that `ros2 run lepton_robot <name>` starts (console scripts in lib/<pkg>).
NODES = [
    'camera_node = lepton_robot.nodes.camera_node:main',
    'command_parser_node = lepton_robot.nodes.command_parser_node:main',
    'defect_detector_node = lepton_robot.nodes.defect_detector_node:main',
    'manipulation_controller_node = lepton_robot.nodes.manipulation_controller_node:main',
    'sim_bridge_node = lepton_robot.nodes.sim_bridge_node:main',
    'supervisor_node = lepton_robot.nodes.supervisor_node:main',
]

ROS_WHEELS = [
    'ros-kilted-rclpy[fastrtps]',
    'ros-std-msgs',
    'ros-sensor-msgs',
    'ros-geometry-msgs',
    'ros-trajectory-msgs',
    'ros-diagnostic-msgs',
    'ros-visualization-msgs',
    'ros-rosgraph-msgs',
    'ros-lifecycle-msgs',   # the detector is a lifecycle node
]

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['tests', 'tests.*', 'benchmarks']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (SHARE, ['package.xml']),
        *_tree('launch', os.path.join(SHARE, 'launch')),
        *_tree('config', os.path.join(SHARE, 'config')),
        *_tree('models', os.path.join(SHARE, 'models')),
        *_tree('sim', os.path.join(SHARE, 'sim')),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy>=1.24',
        'opencv-python-headless>=4.8',
        'onnxruntime>=1.17',
        'pybullet>=3.2.6',
        'pyyaml>=6',
        'tqdm>=4.60',
        'matplotlib>=3.7',
        'psutil>=5.9',
    ],
    extras_require={
        # PyPI ROS 2 wheels (x86_64). A robot or Jetson brings its own ROS 2 instead.
        'ros': ROS_WHEELS,
        # Training and export only; runtime inference never imports torch.
        'train': ['torch==2.13.0', 'onnx>=1.16', 'onnxconverter-common>=1.14'],
        'dev': [
            'pytest>=8',
            'pytest-timeout>=2.3',
            'hypothesis>=6.100',
            'colcon-core>=0.17',
            'colcon-ros>=0.5',
            'ros-ament-flake8',
            'ros-ament-pep257',
            'flake8',
            'pydocstyle',
            'flake8-builtins',
            'flake8-comprehensions',
            'flake8-docstrings',
            'flake8-import-order',
            'flake8-quotes',
        ],
    },
    zip_safe=True,
    maintainer='lepton_robot maintainers',
    maintainer_email='maintainers@lepton-robot.dev',
    description='Robotic visual inspection and sorting on the edge (ROS 2, ONNX, PyBullet).',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': ['lepton-robot = lepton_robot.cli:main', *NODES],
    },
)
