"""The end-to-end demo on synthetic data (``nnunet-ext demo``)."""

from nnunet_ext.demo.config import DemoConfig
from nnunet_ext.demo.pipeline import run_demo
from nnunet_ext.demo.summary import DemoResult, format_summary

__all__ = ["DemoConfig", "DemoResult", "format_summary", "run_demo"]
