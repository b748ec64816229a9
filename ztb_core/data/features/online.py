"""`technical-66` computed one bar at a time: the live agent's features at a cost that does not grow
with the bar buffer.

`OnlineTechnical.update(bar)` turns one new M1 bar into one feature row. Every indicator keeps the
state its offline formula (`technical.compute_technical`, `indicators.py`) carries forward:

* recursive averages (EMA, Wilder for RSI/ATR/DI/ADX, the MACD signal) keep their value and are
  seeded, like offline, with the mean of their first `n` finite inputs, then advanced with the same
  coefficients (`alpha * x + (1 - alpha) * y`, what `scipy.signal.lfilter` computes);
* windowed statistics (returns, SMA, std, max/min, CCI's mean deviation) read the last bars from
  ring buffers of fixed length (the longest window is 241 bars), exactly per window; a flat window
  gives the same exact neutral values as offline (mean = the value, std = 0);
* the higher-timeframe context (M5, M15, H1, H4, D) keeps the bucket being built and the last two
  finished ones, with the offline rules: a bucket counts once the decision moment is at or past
  its close, and the first bucket seen is complete only if its first bar opened it.

State is never saved: on start or restart `rebuild(bars)` replays the buffer through `update`, so
the rows equal `compute_feature_set("technical-66", buffer)` over that buffer
(tests/data/test_online_parity.py checks all 66 columns and the valid mask to 1e-9 over long FX and
crypto replays with restarts). The rows keep the offline conventions: float32, warm-up cells 0 and
the row's `valid` False.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...errors import DataError
from ..resample import bucket_bounds
from ..schema import NS_PER_MINUTE, TIMEFRAME_MINUTES, check_market, index_ns
from .technical import EMA_WINDOWS, HTF_CONTEXT, NAMES, RET_HORIZONS, RSI_WINDOWS, RVOL_WINDOWS, SMA_WINDOWS

NAN = float("nan")
DAY_NS = 86_400 * 1_000_000_000
#: longest look-back of any windowed feature: ret_240 reads the close 240 bars back
HISTORY = max(max(RET_HORIZONS) + 1, max(RVOL_WINDOWS), max(SMA_WINDOWS), 60)
_COL = {name: j for j, name in enumerate(NAMES)}


def _safe_div(num: float, den: float, fallback: float) -> float:
    """indicators.safe_div for scalars: NaN in, NaN out; `fallback` for a zero denominator."""
    if num != num or den != den:
        return NAN
    return num / den if den != 0 else fallback


def _mean(w: np.ndarray) -> float:
    """Window mean as pandas' rolling mean gives it: exactly the value for a flat window."""
    lo = w.min()
    return float(lo) if lo == w.max() else float(w.mean())


def _std(w: np.ndarray) -> float:
    """Population std of a window as `indicators.rolling_std` computes it (two-pass; 0 if flat)."""
    lo = w.min()
    if lo == w.max():
        return 0.0
    return float(w.std())


class _Smoother:
    """`indicators._smooth` one value at a time: NaN until `n` finite inputs, seeded with their
    mean, then `alpha * x + (1 - alpha) * y`."""

    __slots__ = ("alpha", "beta", "n", "seed", "value")

    def __init__(self, n: int, alpha: float) -> None:
        self.n, self.alpha, self.beta = n, alpha, 1.0 - alpha
        self.seed: list[float] = []
        self.value = NAN

    def update(self, x: float) -> float:
        if self.value == self.value:
            self.value = self.alpha * x + self.beta * self.value
        elif x == x:
            self.seed.append(x)
            if len(self.seed) == self.n:
                self.value = float(np.asarray(self.seed).mean())
                self.seed = []
        return self.value


def _ema(n: int) -> _Smoother:
    return _Smoother(n, 2.0 / (n + 1.0))


def _wilder(n: int) -> _Smoother:
    return _Smoother(n, 1.0 / n)


class _Ring:
    """The last values of one series as a contiguous float64 view (write pointer over a double-length
    array; the tail is copied to the front when it reaches the end)."""

    __slots__ = ("buf", "cap", "end", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = np.full(2 * cap, np.nan)
        self.end = 0
        self.size = 0

    def push(self, x: float) -> None:
        if self.end == len(self.buf):
            self.buf[: self.cap - 1] = self.buf[self.end - self.cap + 1 : self.end]
            self.end = self.cap - 1
        self.buf[self.end] = x
        self.end += 1
        self.size += 1

    def last(self, n: int) -> np.ndarray | None:
        """The last n values (oldest first), or None before n values were pushed (warm-up)."""
        return self.buf[self.end - n : self.end] if self.size >= n else None

    def back(self, k: int) -> float:
        """The value pushed k steps ago (0 = the newest); NaN before that."""
        return float(self.buf[self.end - 1 - k]) if self.size > k else NAN


def _window_mean(ring: _Ring, n: int) -> float:
    w = ring.last(n)
    if w is None:
        return NAN
    m = _mean(w)
    return m if not np.isnan(w).any() else NAN


def _window_std(ring: _Ring, n: int) -> float:
    w = ring.last(n)
    if w is None or np.isnan(w).any():
        return NAN
    return _std(w)


def _window_max(ring: _Ring, n: int) -> float:
    w = ring.last(n)
    return NAN if w is None else float(w.max())  # a NaN inside propagates, like pandas min_periods=n


def _window_min(ring: _Ring, n: int) -> float:
    w = ring.last(n)
    return NAN if w is None else float(w.min())


class _Bucket:
    __slots__ = ("close", "complete", "end", "high", "low", "start")

    def __init__(self, start: int, end: int, complete: bool, high: float, low: float, close: float) -> None:
        self.start, self.end, self.complete = start, end, complete
        self.high, self.low, self.close = high, low, close


class _Context:
    """One higher timeframe: the bucket being built and the last two finished ones."""

    __slots__ = ("bounds", "cur", "market", "prev1", "prev2", "seen", "tf", "width")

    def __init__(self, tf: str, market: str) -> None:
        self.tf, self.market = tf, market
        self.width = TIMEFRAME_MINUTES[tf] * NS_PER_MINUTE if tf != "D" else 0
        self.bounds: tuple[int, int] | None = None  # cached daily session (the FX day follows New York DST)
        self.cur: _Bucket | None = None
        self.prev1: _Bucket | None = None
        self.prev2: _Bucket | None = None
        self.seen = False

    def _bounds(self, t: int) -> tuple[int, int]:
        if self.width:
            s = t // self.width * self.width
            return s, s + self.width
        if self.bounds is None or not self.bounds[0] <= t < self.bounds[1]:
            starts, ends = bucket_bounds(np.array([t], dtype=np.int64), "D", self.market)
            self.bounds = (int(starts[0]), int(ends[0]))
        return self.bounds

    def _finish(self) -> None:
        self.prev2, self.prev1, self.cur = self.prev1, self.cur, None

    def update(self, t: int, high: float, low: float, close: float) -> None:
        cur = self.cur
        if cur is not None and not cur.start <= t < cur.end:
            self._finish()
            cur = None
        if cur is None:
            s, e = self._bounds(t)
            # offline (`resample`): only the first bucket of the data can start late and be incomplete
            self.cur = cur = _Bucket(s, e, self.seen or t == s, high, low, close)
            self.seen = True
        else:
            cur.high = max(cur.high, high)
            cur.low = min(cur.low, low)
            cur.close = close
        if t + NS_PER_MINUTE >= cur.end:  # this bar closes the bucket: a decision now may see it
            self._finish()

    def last_two(self) -> tuple[float, float, float, float]:
        """(C1, C2, H1, L1) of the last completed buckets (`AlignedHTF.take`; NaN where missing)."""
        p1, p2 = self.prev1, self.prev2
        if p1 is None or not p1.complete:
            return NAN, NAN, NAN, NAN
        c2 = p2.close if p2 is not None and p2.complete else NAN
        return p1.close, c2, p1.high, p1.low


class OnlineTechnical:
    """`technical-66` row by row. `keep` = how many of the newest rows `window()` can return."""

    def __init__(self, market: str = "fx", keep: int = 1) -> None:
        self.market = check_market(market)
        self.keep = max(1, int(keep))
        self.reset()

    # ---- state ----------------------------------------------------------------------------------
    def reset(self) -> None:
        cap = HISTORY + 1
        self.n_bars = 0
        self.last_time: int | None = None
        self._close, self._high, self._low = _Ring(cap), _Ring(cap), _Ring(cap)
        self._r1, self._r2, self._tp, self._lv, self._k = _Ring(cap), _Ring(cap), _Ring(cap), _Ring(cap), _Ring(cap)
        self._gain = {n: _wilder(n) for n in RSI_WINDOWS}
        self._loss = {n: _wilder(n) for n in RSI_WINDOWS}
        self._ema = {n: _ema(n) for n in {12, 26, *EMA_WINDOWS}}
        self._signal = _ema(9)
        self._atr = {14: _wilder(14), 60: _wilder(60)}
        self._s_tr, self._s_p, self._s_m, self._adx = _wilder(14), _wilder(14), _wilder(14), _wilder(14)
        self._ctx = [_Context(tf, self.market) for tf in HTF_CONTEXT]
        self._prev: tuple[float, float, float] | None = None  # previous bar's high, low, close
        self._rows = np.zeros((2 * self.keep, len(NAMES)), dtype=np.float32)
        self._valid = np.zeros(2 * self.keep, dtype=bool)
        self._end = 0
        self.last_row64 = np.full(len(NAMES), np.nan)

    def rebuild(self, bars: pd.DataFrame) -> None:
        """Forget everything and replay `bars` (oldest first): the state after a start or restart.
        Bars older than the windows and the rows kept only advance the recursive state and the
        higher-timeframe buckets (cheap); the newest `HISTORY + keep` bars are fed in full."""
        self.reset()
        self.extend(bars, full_from=max(0, len(bars) - (HISTORY + self.keep + 2)))

    def extend(self, bars: pd.DataFrame, full_from: int = 0) -> None:
        """Feed bars newer than the last one seen, oldest first (rows before `full_from` only advance
        the state: their own rows and the windows they would fill are never read)."""
        if len(bars) == 0:
            return
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in bars.columns]
        if missing:
            raise DataError(f"online technical-66: bars lack column(s) {', '.join(missing)}")
        o, h, lo, c, v = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume"))
        times = index_ns(pd.DatetimeIndex(bars.index))
        for i in range(min(full_from, len(times))):
            t = int(times[i])
            self._check_time(t)
            self._advance(t, float(h[i]), float(lo[i]), float(c[i]))
            self.last_time = t
            self.n_bars += 1
        for i in range(full_from, len(times)):
            self.update(int(times[i]), o[i], h[i], lo[i], c[i], v[i])

    def sync(self, bars: pd.DataFrame) -> int:
        """Bring the state up to the newest bar of a rolling buffer: feed only the bars after the last
        one seen, or rebuild from the whole buffer when it does not continue the state (first call,
        a gap, a replaced buffer). Returns how many bars were fed."""
        if len(bars) == 0:
            return 0
        times = bars.index
        if self.last_time is not None:
            last = pd.Timestamp(self.last_time, tz="UTC")
            if times[-1] == last:
                return 0
            pos = int(times.searchsorted(last))
            if pos < len(times) and times[pos] == last:
                self.extend(bars.iloc[pos + 1 :])
                return len(times) - pos - 1
        self.rebuild(bars)
        return len(times)

    # ---- one bar --------------------------------------------------------------------------------
    def _check_time(self, t: int) -> None:
        if self.last_time is not None and t <= self.last_time:
            raise DataError(
                f"online technical-66: bar {pd.Timestamp(t, tz='UTC')} is not after the last one "
                f"({pd.Timestamp(self.last_time, tz='UTC')}); bars must be sorted and unique"
            )

    def _advance(self, t: int, h: float, lo: float, c: float) -> tuple:
        """The recursive state and the higher-timeframe buckets, advanced by one bar; returns what
        the row needs from them."""
        prev = self._prev
        if prev is None:  # the first bar has no previous close: no change, no true range (offline: NaN)
            gain = loss = tr = plus_dm = minus_dm = NAN
        else:
            ph, pl, pc = prev
            d = c - pc
            gain, loss = (d if d > 0 else 0.0), (-d if d < 0 else 0.0)
            tr = max(h - lo, max(abs(h - pc), abs(lo - pc)))
            upm, downm = h - ph, -(lo - pl)
            plus_dm = upm if (upm > downm and upm > 0) else 0.0
            minus_dm = downm if (downm > upm and downm > 0) else 0.0
        rsi = [(self._gain[n].update(gain), self._loss[n].update(loss)) for n in RSI_WINDOWS]
        ema = {n: s.update(c) for n, s in self._ema.items()}
        line = ema[12] - ema[26]
        sig = self._signal.update(line)
        atr14, atr60 = self._atr[14].update(tr), self._atr[60].update(tr)
        s_tr, s_p, s_m = self._s_tr.update(tr), self._s_p.update(plus_dm), self._s_m.update(minus_dm)
        pdi, mdi = _safe_div(100.0 * s_p, s_tr, 0.0), _safe_div(100.0 * s_m, s_tr, 0.0)
        adx = self._adx.update(_safe_div(100.0 * abs(pdi - mdi), pdi + mdi, 0.0))
        for ctx in self._ctx:
            ctx.update(t, h, lo, c)
        self._prev = (h, lo, c)
        return rsi, ema, line, sig, atr14, atr60, pdi, mdi, adx

    def update(self, t: int, o: float, h: float, lo: float, c: float, v: float) -> np.ndarray:
        """Advance by the M1 bar opening at `t` (UTC ns) and return its 66 features (float64, NaN in
        warm-up; `window()` holds the float32 rows)."""
        self._check_time(t)
        o, h, lo, c, v = float(o), float(h), float(lo), float(c), float(v)
        prev = self._prev
        rsi, ema, line, sig, atr14, atr60, pdi, mdi, adx = self._advance(t, h, lo, c)
        row = np.empty(len(NAMES))
        self._close.push(c)
        self._high.push(h)
        self._low.push(lo)
        logc = math.log(c)

        for k in RET_HORIZONS:
            row[_COL[f"ret_{k}"]] = math.log(c / self._close.back(k)) if self.n_bars >= k else NAN
        r1 = row[_COL["ret_1"]]
        self._r1.push(r1)
        self._r2.push(r1 * r1)
        for n in RVOL_WINDOWS:
            ms = _window_mean(self._r2, n)
            row[_COL[f"rvol_{n}"]] = math.sqrt(max(ms, 0.0)) if ms == ms else NAN
        for n, (ag, al) in zip(RSI_WINDOWS, rsi, strict=True):
            row[_COL[f"rsi_{n}"]] = _safe_div(100.0 * ag, ag + al, 50.0) / 100.0
        row[_COL["macd"]] = line / c
        row[_COL["macd_signal"]] = sig / c
        row[_COL["macd_hist"]] = (line - sig) / c

        mid, sd = _window_mean(self._close, 20), _window_std(self._close, 20)
        up, dn = mid + 2.0 * sd, mid - 2.0 * sd
        row[_COL["bb_pctb_20"]] = _safe_div(c - dn, up - dn, 0.5) - 0.5
        row[_COL["bb_width_20"]] = (up - dn) / mid
        row[_COL["atr_14"]] = atr14 / c
        row[_COL["atr_60"]] = atr60 / c

        hh14, ll14 = _window_max(self._high, 14), _window_min(self._low, 14)
        pct_k = _safe_div(100.0 * (c - ll14), hh14 - ll14, 50.0)
        self._k.push(pct_k)
        row[_COL["stoch_k_14"]] = pct_k / 100.0 - 0.5
        row[_COL["stoch_d_3"]] = _window_mean(self._k, 3) / 100.0 - 0.5
        row[_COL["adx_14"]] = adx / 100.0
        row[_COL["plus_di_14"]] = pdi / 100.0
        row[_COL["minus_di_14"]] = mdi / 100.0

        tp = (h + lo + c) / 3.0
        self._tp.push(tp)
        w = self._tp.last(20)
        if w is None or np.isnan(w).any():
            row[_COL["cci_20"]] = NAN
        else:
            m = _mean(w)
            row[_COL["cci_20"]] = _safe_div(tp - m, 0.015 * float(np.abs(w - m).mean()), 0.0) / 100.0

        hh60, ll60 = _window_max(self._high, 60), _window_min(self._low, 60)
        row[_COL["willr_60"]] = _safe_div(-100.0 * (hh60 - c), hh60 - ll60, -50.0) / 100.0 + 0.5
        for n in SMA_WINDOWS:
            s = _window_mean(self._close, n)
            row[_COL[f"dist_sma_{n}"]] = logc - math.log(s) if s == s else NAN
        for n in EMA_WINDOWS:
            e = ema[n]
            row[_COL[f"dist_ema_{n}"]] = logc - math.log(e) if e == e else NAN

        logo, logh, logl = math.log(o), math.log(h), math.log(lo)
        row[_COL["body"]] = logc - logo
        row[_COL["upper_wick"]] = logh - max(logo, logc)
        row[_COL["lower_wick"]] = min(logo, logc) - logl
        row[_COL["range"]] = logh - logl
        row[_COL["gap"]] = logo - math.log(prev[2]) if prev is not None else NAN
        row[_COL["zscore_60"]] = _safe_div(c - _window_mean(self._close, 60), _window_std(self._close, 60), 0.0)
        lv = math.log1p(max(v, 0.0))
        self._lv.push(lv)
        row[_COL["volume_z_60"]] = _safe_div(lv - _window_mean(self._lv, 60), _window_std(self._lv, 60), 0.0)

        for ctx in self._ctx:
            c1, c2, h1, l1 = ctx.last_two()
            key = ctx.tf.lower()
            row[_COL[f"{key}_ret"]] = math.log(c1 / c2) if c1 == c1 and c2 == c2 else NAN
            row[_COL[f"{key}_dist"]] = logc - math.log(c1) if c1 == c1 else NAN
            pos = _safe_div(c - l1, h1 - l1, 0.5)
            row[_COL[f"{key}_range_pos"]] = min(max(pos - 0.5, -5.0), 5.0) if pos == pos else NAN

        t_close = t + NS_PER_MINUTE
        days = t_close // DAY_NS
        frac = (t_close - days * DAY_NS) / DAY_NS
        dow = (days + 3) % 7 + frac
        row[_COL["tod_sin"]] = math.sin(2 * math.pi * frac)
        row[_COL["tod_cos"]] = math.cos(2 * math.pi * frac)
        row[_COL["dow_sin"]] = math.sin(2 * math.pi * dow / 7.0)
        row[_COL["dow_cos"]] = math.cos(2 * math.pi * dow / 7.0)

        self.last_time = t
        self.n_bars += 1
        self._store(row)
        self.last_row64 = row
        return row

    def _store(self, row: np.ndarray) -> None:
        """Keep the float32 row as `ColumnWriter` writes it: non-finite cells 0 and the row invalid."""
        if self._end == len(self._rows):
            k = self.keep - 1
            self._rows[:k] = self._rows[self._end - k : self._end]
            self._valid[:k] = self._valid[self._end - k : self._end]
            self._end = k
        r32 = row.astype(np.float32)
        ok = np.isfinite(r32)
        valid = bool(ok.all())
        if not valid:
            r32[~ok] = 0.0
        self._rows[self._end] = r32
        self._valid[self._end] = valid
        self._end += 1

    # ---- output ---------------------------------------------------------------------------------
    def window(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The newest `n` (default `keep`) float32 rows and their valid flags, oldest first; fewer
        when fewer bars were seen."""
        n = self.keep if n is None else n
        if n > self.keep:
            raise DataError(f"online technical-66 keeps {self.keep} rows, {n} were asked for")
        have = min(n, self.n_bars)
        return self._rows[self._end - have : self._end], self._valid[self._end - have : self._end]
