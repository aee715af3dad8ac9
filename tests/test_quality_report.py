"""benchmarks/quality.py's table: cells run with several seeds are their means, with a range."""

from benchmarks.quality import over_seeds, report


def row(method: str, error: float, per_image: dict[str, float], seed: int) -> dict:
    return {"method": method, "budget": 1000, "layer": "features.17", "seed": seed,
            "mean_normalized_error": str(error), "mean_psnr": "11.0", "mean_hf_ratio": "2.0",
            "top1": None, "top5": None, "per_image": per_image}  # fmt: skip


def test_a_cell_over_seeds_is_the_mean_with_the_range_of_its_error() -> None:
    rows = [
        row("slp", 0.10, {"a": 0.05, "b": 0.15}, seed=0),
        row("slp", 0.14, {"a": 0.25, "b": 0.03}, seed=1),
        row("pixel", 0.20, {"a": 0.10, "b": 0.30}, seed=0),
    ]
    slp, pixel = over_seeds(rows)
    assert abs(slp["mean_normalized_error"] - 0.12) < 1e-12
    assert slp["error_range"] == (0.10, 0.14) and slp["seeds"] == 2
    assert abs(slp["per_image"]["a"] - 0.15) < 1e-12 and abs(slp["per_image"]["b"] - 0.09) < 1e-12
    assert "error_range" not in pixel and pixel["mean_normalized_error"] == "0.2"
    table = report(rows)
    assert "| slp | 1000 | 12.0 % (10.0–14.0 %) / 11.0 dB / 2.00 |" in table
    assert "| pixel | 1000 | 20.0 % / 11.0 dB / 2.00 |" in table
    # The goals compare the seeds' means: 0.12 / 0.20; per image a 0.15 > 0.10, b 0.09 <= 0.30.
    assert "error 0.60× pixel's (met; slp ≤ pixel on 1/2 images)" in table
    # Per photograph: a 0.15 / 0.10 = 1.5×, past the 1.25× a stall is.
    assert "worst photograph a 1.50× pixel's (NOT met: ≤ 1.25× on each)" in table
