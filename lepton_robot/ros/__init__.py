"""ROS 2 glue shared by the nodes (imports rclpy; the core modules never import this)."""
