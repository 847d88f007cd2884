"""ROS 2 nodes: each converts messages, reads parameters and calls the core."""
