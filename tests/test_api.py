"""The Python entry points stay callable whatever has been imported before them."""

from __future__ import annotations


def test_pixelsmith_train_is_callable_after_the_engine_is_imported(tmp_path, tiny):
    import pixelsmith.train.loop  # noqa: F401  (sets pixelsmith.train to the package)

    run = pixelsmith.train("dcgan", *tiny, "train.steps=2", "train.eval_at_end=false",
                           out=tmp_path, progress=False)  # fmt: skip
    assert (run / "manifest.json").is_file()
    assert callable(pixelsmith.load) and callable(pixelsmith.evaluate)
