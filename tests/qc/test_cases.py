from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.io import reader_writer
from nnunet_ext.io.errors import InputError
from nnunet_ext.qc.cases import QcContext, QcOptions, check_case, finish_qc, member_names
from nnunet_ext.qc.html import render_html
from nnunet_ext.synthetic import sitk_properties

from .conftest import confident, heart

LABELS = {1: "myocardium", 2: "LV", 3: "RV"}


def context(tmp_path: Path, **options) -> QcContext:
    qc = QcOptions(**options)
    return QcContext(qc, qc.resolve(), tmp_path, ("2d", "3d"), LABELS, ".nii.gz", "SimpleITKIO")


def run_two_cases(ctx: QcContext) -> None:
    reference = heart()
    blind = reference.copy()
    blind[blind == 3] = 0
    properties = sitk_properties(reference.shape, spacing=(1.5, 1.0, 2.0), origin=(3, 4, 5))
    p = confident(reference)
    check_case(ctx, "agree", p, reference, [reference, reference], properties)
    check_case(ctx, "blind", p, reference, [reference, blind], properties)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.sections: list[str] = []
        self.reasons = 0
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag in ("a", "link") and "href" in attributes:
            self.links.append(attributes["href"])
        if tag == "section":
            self.sections.append(attributes["id"])
        if tag == "script":
            self.scripts += 1
        if tag == "li":
            self.reasons += 1


def test_records_maps_figures_report(tmp_path):
    report_file = tmp_path / "report.html"
    ctx = context(tmp_path, maps=True, report=report_file)
    run_two_cases(ctx)
    report = finish_qc(ctx, ["agree", "blind"])
    assert [c.case for c in report.flagged] == ["blind"]
    assert json.loads((tmp_path / "qc.json").read_text())["cases"][0]["case"] == "blind"
    assert (tmp_path / "qc.csv").is_file()
    # the maps open in nnU-Net's reader with the case's geometry
    rw = reader_writer("SimpleITKIO")
    for name in ("disagreement", "entropy"):
        seg, props = rw.read_seg(str(tmp_path / "qc" / "maps" / f"blind_{name}.nii.gz"))
        assert seg.shape == (1, *heart().shape)
        assert props["sitk_stuff"]["spacing"] == (1.5, 1.0, 2.0)
        assert props["sitk_stuff"]["origin"] == (3.0, 4.0, 5.0)
    seg, _ = rw.read_seg(str(tmp_path / "qc" / "maps" / "blind_disagreement.nii.gz"))
    assert set(np.unique(seg)) == {0, 1}
    assert (seg[0] == 1).sum() == (heart() == 3).sum()
    # a figure for the flagged case only
    assert (tmp_path / "qc" / "figures" / "blind.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "qc" / "figures" / "agree.png").exists()
    page = Page()
    page.feed(report_file.read_text())
    assert page.sections == ["case-blind"]
    assert page.scripts == 0
    assert all(link.startswith("#") for link in page.links)
    (image,) = page.images
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1])[:4] == b"\x89PNG"
    assert page.reasons == len(report.flagged[0].labels[2].reasons)


def test_without_maps_nothing_but_records(tmp_path):
    ctx = context(tmp_path)
    run_two_cases(ctx)
    finish_qc(ctx, ["agree", "blind"])
    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == ["cases"]


def test_finish_refuses_missing_or_foreign_records(tmp_path):
    ctx = context(tmp_path)
    run_two_cases(ctx)
    with pytest.raises(
        FileNotFoundError, match=r"the QC record of case 'other'\. Rerun with qc=True"
    ):
        finish_qc(ctx, ["agree", "other"])
    other = QcContext(
        ctx.options, ctx.thresholds, tmp_path, ("a", "b", "c"), LABELS, ".nii.gz", "SimpleITKIO"
    )
    with pytest.raises(InputError, match="must be a version 1 QC record of the members"):
        finish_qc(other, ["agree"])


def test_html_escapes_case_names(tmp_path):
    ctx = context(tmp_path)
    run_two_cases(ctx)
    report = finish_qc(ctx, ["agree", "blind"])
    text = render_html(report, {})
    assert "<script" not in text
    assert "http" not in text


def test_member_names_are_unique():
    assert member_names(["/a/2d", "/b/2d", "/c/x"], [None, None, "3d"]) == ("2d", "2d#1", "3d")


def test_a_2d_case_gets_its_maps_and_figure(tmp_path):
    ctx = context(tmp_path, maps=True)
    labels = heart()[4]
    blind = labels.copy()
    blind[blind == 3] = 0
    properties = sitk_properties((1, *labels.shape), spacing=(1.0, 1.0, 999.0))
    check_case(ctx, "flat", confident(labels), labels, [labels, blind], properties)
    assert (tmp_path / "qc" / "figures" / "flat.png").is_file()
    seg, _ = reader_writer("SimpleITKIO").read_seg(
        str(tmp_path / "qc" / "maps" / "flat_entropy.nii.gz")
    )
    assert seg.shape == (1, 1, *labels.shape)
