"""The end-to-end demo on synthetic data (``nnunet-ext demo``)."""

from nnunet_ext.demo.pipeline import DemoConfig, DemoResult, format_summary, run_demo

__all__ = ["DemoConfig", "DemoResult", "format_summary", "run_demo"]
