"""tests/browser.py: which requests count as local, and what happens where Chromium is missing."""

import pytest

import browser


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///tmp/repo/dvc_plots/index.html", True),
        ("data:image/png;base64,iVBO", True),
        ("http://127.0.0.1:5000/ajax-api/2.0/mlflow/runs/search", True),
        ("http://127.8.0.1/", True),
        ("http://[::1]:8080/", True),
        ("http://localhost:5000/", True),
        ("https://cdn.jsdelivr.net/npm/vega@5.20.2", False),
        ("http://10.0.0.1/", False),
        ("http://localhost.example.com/", False),
        ("wss://example.com/socket", False),
    ],
)
def test_only_local_urls_are_let_through(url, local):
    assert browser.is_local(url) is local


def test_missing_chromium_skips_saying_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install chromium"):
        browser.require_chromium()


def test_missing_chromium_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(BaseException) as raised:  # a skip too, which would hide a failure
        browser.require_chromium()
    assert raised.type is pytest.fail.Exception
    assert ".ci/system-packages" in str(raised.value)
