"""The HTML report without a browser: content, hooks, self-containment, size, image handling, bad input, CLI."""
import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from _report_data import noisy_recording
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from interpretdl_noise import Recording, Report, report, suggest_labels
from interpretdl_noise.cli import main
from interpretdl_noise.interpreter.registry import run_detector
from interpretdl_noise.reporting.images import ImageSource, to_uint8_image

N, K = 120, 30
FAST = ["small_loss", "forgetting", "datamaps", "aum", "ema"]  # recording-only detectors, milliseconds each


class _Cards(HTMLParser):
    """Collects each card's attributes and its thumbnail (img src or svg class), in document order."""

    def __init__(self):
        super().__init__()
        self.cards, self.scripts_with_src, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article" and "card" in attrs.get("class", "").split():
            self.cards.append({"attrs": attrs, "img": None, "svg": []})
        elif self.cards and tag == "img":
            self.cards[-1]["img"] = attrs["src"]
        elif self.cards and tag == "svg":
            self.cards[-1]["svg"].append(attrs.get("class"))
        if tag == "script" and "src" in attrs:
            self.scripts_with_src.append(attrs["src"])
        if tag == "link":
            self.links.append(attrs)


def parse(page: str) -> _Cards:
    parser = _Cards()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return noisy_recording(tmp_path_factory.mktemp("rec") / "training_dynamics.npz", n=N)


def decode_png(src):
    assert src.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


def test_cards_carry_the_hooks_in_rank_order(recording):
    path, info = recording
    rep = report(path, images=info["images"], top=K, method="small_loss", methods=FAST)
    assert isinstance(rep, Report) and rep.n_cards == K
    cards = parse(rep.html).cards
    assert len(cards) == K
    rec = Recording.coerce(path)
    scores = {name: run_detector(name, rec) for name in FAST}
    expected_rows = np.argsort(-scores["small_loss"], kind="stable")[:K]
    suggested = rep.content.suggested
    for position, (card, row) in enumerate(zip(cards, expected_rows), start=1):
        a = card["attrs"]
        assert int(a["data-sample-id"]) == row  # sample_ids are 0..N-1 here
        assert int(a["data-given"]) == info["given"][row]
        assert int(a["data-suggested"]) == suggested[row]
        assert int(a["data-rank"]) == position
        for name in FAST:
            assert float(a[f"data-score-{name}"]) == pytest.approx(scores[name][row], rel=1e-6, abs=1e-9)
        assert a["data-flagged"] in ("0", "1") and a["data-known-flip"] == str(int(info["flips"][row]))
    np.testing.assert_array_equal(suggested, suggest_labels(rec, flagged=rep.content.flagged).label)
    # the synthetic flips are the most suspicious samples: the first cards are mostly known flips
    assert info["flips"][expected_rows[:10]].mean() >= 0.8


def test_controls_and_review_hooks(recording):
    path, info = recording
    page = report(path, images=info["images"], top=K, method="small_loss", methods=FAST).html
    sort = re.search(r'<select id="sort-by">(.*?)</select>', page).group(1)
    assert re.findall(r'<option value="([^"]+)"', sort) == FAST  # values = detector names
    assert 'value="small_loss" selected' in sort
    for hook in ('id="filter-given"', 'id="filter-suggested"', 'id="filter-flag"', 'id="search"',
                 'id="export-decisions"', 'id="visible-count"'):
        assert hook in page
    gallery = page[page.index('<main id="cards">'):page.index("</main>")]
    for action in ("keep", "drop", "relabel"):
        assert gallery.count(f'<button type="button" data-action="{action}">') == K


def test_page_is_self_contained(recording):
    path, info = recording
    page = report(path, images=info["images"], top=K, methods=FAST, method="aum").html
    parsed = parse(page)
    assert parsed.scripts_with_src == []
    assert all(link.get("href", "").startswith("data:") for link in parsed.links)
    assert not re.search(r"(?:src|href)\s*=\s*[\"'](?!data:|#)", page), "a resource outside the page"
    assert "http://" not in page and "https://" not in page and "url(" not in page and "@import" not in page


def test_summary_numbers(recording):
    path, info = recording
    rep = report(path, images=info["images"], top=K, methods=FAST, method="aum")
    page, content = rep.html, rep.content
    est = content.estimate
    assert f"{100 * est.rate:.1f} %" in page and f"{100 * est.interval[0]:.1f} %" in page
    assert f"<b>{N:,}</b>" in page and "classes (C)" in page and "epochs (E)" in page
    for name in FAST:  # AUROC / AP of each detector against label_flip, as sklearn computes them
        s = content.scores[name]
        assert f"{roc_auc_score(info['flips'], s):.3f}" in page
        assert f"{average_precision_score(info['flips'], s):.3f}" in page
    assert page.count('class="series"') == 2 * len(FAST)  # one ROC and one PR curve per detector
    counts = content.given_vs_suggested()
    assert counts.sum() == N and page.count('class="cell') == 4 * 4
    assert len(re.findall(r'class="bar(?: hi)?"', page)) == 4  # per-class estimated noise bars (cards show images here)


def test_without_label_flip_no_detection_curves(tmp_path):
    path, info = noisy_recording(tmp_path / "r.npz", n=60, n_flipped=6, label_flip=False)
    page = report(path, images=info["images"], top=10, methods=FAST, method="small_loss").html
    assert "ROC against label_flip" not in page and 'class="series"' not in page
    assert all("data-known-flip" not in c["attrs"] for c in parse(page).cards) and "estimated noise" in page


@pytest.mark.parametrize("layout", ["hw", "hw1", "hw3", "1hw", "3hw", "float", "dataset", "tensor"])
def test_image_layouts_become_pngs(recording, layout):
    path, info = recording
    grey = info["images"]  # (N, 8, 8) uint8
    rgb = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    images = {"hw": grey, "hw1": grey[..., None], "hw3": rgb, "1hw": grey[:, None], "3hw": np.moveaxis(rgb, -1, 1),
              "float": grey.astype(np.float32) / 255.0, "dataset": [(img, 0) for img in grey],
              "tensor": __import__("paddle").to_tensor(grey)}[layout]
    rep = report(path, images=images, top=5, methods=["small_loss"], method="small_loss")
    cards = parse(rep.html).cards
    assert len(cards) == 5
    for card in cards:
        sid = int(card["attrs"]["data-sample-id"])
        png = decode_png(card["img"])
        assert png.size == (8, 8)
        want = rgb[sid] if layout in ("hw3", "3hw") else grey[sid]
        np.testing.assert_array_equal(np.asarray(png.convert("RGB" if want.ndim == 3 else "L")), want)


def test_large_images_are_downscaled(recording):
    path, _ = recording
    big = np.random.default_rng(0).integers(0, 256, (N, 3, 200, 150)).astype(np.uint8)
    card = parse(report(path, images=big, top=1, methods=["small_loss"], method="small_loss").html).cards[0]
    assert max(decode_png(card["img"]).size) == 72


def test_feature_vectors_and_no_images(recording):
    path, _ = recording
    feats = np.random.default_rng(1).normal(size=(N, 40))
    cards = parse(report(path, images=feats, top=4, methods=["small_loss"], method="small_loss").html).cards
    assert all(c["img"] is None and c["svg"][0] == "thumb-svg" for c in cards)
    cards = parse(report(path, top=4, methods=["small_loss"], method="small_loss").html).cards
    assert all(c["img"] is None and c["svg"][0] == "bars" for c in cards)  # last-epoch class probabilities


def test_200_digit_cards_under_5_mb(tmp_path):
    path, _ = noisy_recording(tmp_path / "r.npz", n=240, n_flipped=30, side=28)
    noise = np.random.default_rng(0).integers(0, 256, (240, 28, 28)).astype(np.uint8)  # worst case for PNG
    rep = report(path, images=noise, top=200, methods=FAST, method="small_loss")
    out = rep.save(tmp_path / "report.html")
    assert rep.n_cards == 200 and out.stat().st_size < 5_000_000


def test_bad_input_is_refused_clearly(recording, tmp_path):
    path, info = recording
    imgs = info["images"]
    cases = [
        (dict(images=imgs[:-1]), f"images has {N - 1} items but the recording has N={N}"),
        (dict(images=np.zeros((N, 4, 4, 2), np.uint8)), "each image must be"),
        (dict(images=np.zeros((N, 2, 2, 2, 2), np.uint8)), "expected"),
        (dict(images=imgs.astype(np.int32)), "dtype int32"),
        (dict(images=imgs.astype(np.float32)), r"float images must lie in \[0, 1\]"),
        (dict(images="images.npy"), "not a string"),
        (dict(class_names=["a", "b"]), "class_names has 2 names but the recording has C=4"),
        (dict(class_names="abcd"), "not one string"),
        (dict(top=0), "must be >= 1"),
        (dict(top=-3), "must be >= 1"),
        (dict(top=2.5), "must be an integer"),
        (dict(top=True), "must be an integer"),
        (dict(method="ema", methods=["small_loss"]), "the ranking method 'ema' has no scores"),
        (dict(scores={"small_loss": np.zeros(N - 1)}, method="small_loss"), "has 119 values"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("methods", ["small_loss"])
        kwargs.setdefault("method", "small_loss")
        with pytest.raises(ValueError, match=message):
            report(path, **kwargs)
    shifted = dict(Recording.coerce(path).to_dict(), sample_ids=np.arange(1000, 1000 + N))
    with pytest.raises(ValueError, match=r"sample_ids range over \[1000, 1119\] but images has 120 items"):
        report(shifted, images=imgs, methods=["small_loss"], method="small_loss")
    no_labels = {"td": np.full((5, 3, 2), 0.5, np.float16)}
    with pytest.raises(ValueError, match="labels"):
        report(no_labels, methods=["small_loss"], method="small_loss")
    rep = report(path, top=3, methods=["small_loss"], method="small_loss")
    with pytest.raises(ValueError, match="ending in .html"):
        rep.save(tmp_path / "report.txt")
    assert not (tmp_path / "report.txt").exists()


def test_top_larger_than_n_shows_everything_and_names_are_escaped(tmp_path):
    path, info = noisy_recording(tmp_path / "r.npz", n=20, n_flipped=3)
    names = ["<cat>", "dog & co", 'say "hi"', "plain"]
    rep = report(path, images=info["images"], class_names=names, top=500, methods=["small_loss"],
                 method="small_loss")
    assert rep.n_cards == 20 and "every sample is shown" in rep.html
    assert "&lt;cat&gt;" in rep.html and "dog &amp; co" in rep.html and "<cat>" not in rep.html.replace(
        '"<cat>"', "")  # only inside the JSON config (escaped for a script element)
    assert '"classNames": ["<cat>", "dog & co", "say \\"hi\\"", "plain"]' in rep.html


def test_precomputed_scores_and_notebook_repr(recording):
    path, info = recording
    rec = Recording.coerce(path)
    scores = {"small_loss": run_detector("small_loss", rec), "aum": run_detector("aum", rec)}
    rep = report(rec, images=info["images"], top=6, scores=scores, method="aum")
    assert list(rep.content.scores) == ["small_loss", "aum"] and rep.content.not_run == {}
    frame = rep._repr_html_()
    assert frame.startswith("<iframe srcdoc=\"&lt;!DOCTYPE html&gt;") and "data-sample-id=&quot;" in frame
    assert "<script" not in frame  # the page lives escaped inside srcdoc, apart from the notebook's DOM
    assert "cards=6" in repr(rep)


def test_report_command(recording, tmp_path, capsys):
    path, info = recording
    images = tmp_path / "images.npy"
    np.save(images, info["images"])
    names = tmp_path / "names.txt"
    names.write_text("zero\none\ntwo\nthree\n\n")
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(path), "--out", str(out), "--images", str(images), "--class-names", str(names),
                 "--top", "7", "--method", "small_loss"]) == 0
    assert "report of 7 suspects (by small_loss)" in capsys.readouterr().out
    page = out.read_text()
    assert len(parse(page).cards) == 7 and ">three<" in page
    bad_images = tmp_path / "bad.npy"
    np.save(bad_images, info["images"][:10])
    assert main(["report", str(path), "--out", str(tmp_path / "x.html"), "--images", str(bad_images),
                 "--method", "small_loss"]) == 2
    assert "images has 10 items but the recording has N=120" in capsys.readouterr().err
    names.write_text("a\nb\n")
    assert main(["report", str(path), "--out", str(tmp_path / "x.html"), "--class-names", str(names),
                 "--method", "small_loss"]) == 2
    assert "class_names has 2 names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(path), "--out", str(tmp_path / "x.html"), "--top", "0"])
    assert "--top must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_image_helpers():
    assert to_uint8_image(np.full((3, 3), 1.0)).tolist() == [[255] * 3] * 3
    assert to_uint8_image(np.zeros((1, 2, 5), np.uint8)).shape == (2, 5)
    with pytest.raises(ValueError, match="NaN"):
        to_uint8_image(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="each image must be"):
        ImageSource([np.zeros((2, 2, 5))] * 3, 3).item(0)
