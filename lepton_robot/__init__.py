"""lepton_robot: robotic visual inspection and sorting on the edge."""

__version__ = '0.1.0'
