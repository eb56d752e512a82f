#!/usr/bin/env python3
"""Summarise a weather-station CSV: mean temperatures, total rain, sunniest day.

Usage: python3 summarize_weather.py [path/to/weather-station.csv]
"""

import csv
import sys
from pathlib import Path
from statistics import mean

DEFAULT = Path(__file__).resolve().parent.parent / "data" / "weather-station.csv"


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        print(f"{path}: no rows", file=sys.stderr)
        return 1

    lows = [float(r["min_temp_c"]) for r in rows]
    highs = [float(r["max_temp_c"]) for r in rows]
    rain = sum(float(r["rain_mm"]) for r in rows)
    sunniest = max(rows, key=lambda r: float(r["sunshine_h"]))
    dry_days = sum(1 for r in rows if float(r["rain_mm"]) == 0.0)

    print(f"{rows[0]['date']} .. {rows[-1]['date']} ({len(rows)} days)")
    print(f"mean low  {mean(lows):5.1f} °C")
    print(f"mean high {mean(highs):5.1f} °C")
    print(f"rain      {rain:5.1f} mm, {dry_days} dry days")
    print(f"sunniest  {sunniest['date']} ({sunniest['sunshine_h']} h)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
