"""Subcommands of ``lepton-robot`` (one module each, see ``lepton_robot.cli``)."""
