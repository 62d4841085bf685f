"""The simulation loop: task_numa_work calls, KVM zaps and flushes, faults, migrations.

One call of :func:`simulate` yields :class:`Events` in time order, chunk by
chunk (bounded memory), while every process's per-policy truth accumulates in
``Proc.metrics``. The rules are those of the package docstring.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tracereplay.synth import events as ev
from tracereplay.synth.events import EventBuilder, Events
from tracereplay.synth.kernel import KernelModel
from tracereplay.synth.model import (
    BASE,
    FLAG,
    M_FLUSH,
    M_HINT,
    M_HUGE,
    M_INV,
    M_IPI,
    M_MIG_ATT,
    M_MIG_FAIL,
    M_MIG_PAGES,
    M_PLACE,
    M_PTE,
    M_REFAULT,
    M_UNMAP,
    M_ZAP,
    MMOPT,
    PAGES_PER_BLOCK,
    PROTECT,
    SPTE_PRESENT,
    SPTE_ZAPPED,
    VMAOPT,
    Proc,
    Thread,
)
from tracereplay.synth.scenario import BLOCK, Scenario

US = 1000
GENERIC_IPI = "generic_smp_call_function_single_interrupt+0x0/0x10"
KVM_CALLSITE = "smp_call_function_many+0x25/0x40"
TLB_CALLSITE = "on_each_cpu_cond_mask+0x20/0x60"
GUEST_RIP = 0xFFFFFFFF81000000
USER_IP = 0x55D000001234


def cpumask_list(cpus: list[int]) -> str:
    """``0-1,3``: the ``%*pbl`` form of a cpumask."""
    runs: list[list[int]] = []
    for c in sorted(set(cpus)):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


class Simulator:
    def __init__(self, scenario: Scenario, kernel: KernelModel, procs: list[Proc], t0: int):
        self.sc = scenario
        self.k = kernel
        self.procs = procs
        self.t0 = t0
        self.end = t0 + int(scenario.duration * 1e9)
        self.rng = np.random.default_rng(scenario.seed + 7)
        self.cpus_per_node = scenario.host.cpus_per_node
        self.ncpus = scenario.host.cpus
        self.ppi = 0  # set per process
        reasons = (
            ("remote IPI send", "local MM shootdown")
            if kernel.tlb_upper
            else ("remote ipi send", "local mm shootdown")
        )
        self.r_send, self.r_local = reasons

    # ---- helpers -------------------------------------------------------------------
    def node_of(self, cpu: int) -> int:
        return cpu // self.cpus_per_node

    def _running(self, p: Proc, me: Thread) -> list[Thread]:
        """Other threads of the mm on other CPUs: all vCPUs run (in guest mode) all the time."""
        seen = {me.cpu}
        out = []
        for t in p.threads:
            if t.cpu not in seen:
                seen.add(t.cpu)
                out.append(t)
        return out

    def _ipis(
        self, b: EventBuilder, ts: int, me: Thread, p: Proc, targets: list[int], func: str
    ) -> int:
        """Emit one smp_call_function_many() as the kernel release traces it."""
        if not targets:
            return ts
        site = KVM_CALLSITE if func == self.k.kvm_ack else TLB_CALLSITE
        common = (me.cpu, me.pid, p.tgid, me.comm)
        mode = self.k.ipi_mode
        if mode == "csd":
            for c in targets:
                csd = f"{(0x9E37 * (c + 1) * (me.cpu + 3)) & 0xFFFFFFFF:016x}"
                b.add(
                    ts, *common, ev.F_P2, ev.CSD, f"cpu={c} callsite={site} func={func} csd={csd}"
                )
        callback = GENERIC_IPI if mode != "direct" else f"{func}+0x0/0x1d0"
        if mode == "queued":
            b.add(
                ts,
                *common,
                ev.F_P2,
                ev.IPI_MASK,
                f"cpumask={cpumask_list(targets)} callsite={site} callback={func}+0x0/0x1d0",
            )
        if len(targets) == 1:
            b.add(
                ts,
                *common,
                ev.F_P2,
                ev.IPI_CPU,
                f"cpu={targets[0]} callsite={site} callback={callback}",
            )
        else:
            b.add(
                ts,
                *common,
                ev.F_P2,
                ev.IPI_MASK,
                f"cpumask={cpumask_list(targets)} callsite={site} callback={callback}",
            )
        return ts + US

    def _granules(self, s: int, e: int) -> list[tuple[int, int]]:
        g = self.k.notifier_granule
        out = []
        while s < e:
            ge = min(e, (s // g + 1) * g)
            out.append((s, ge))
            s = ge
        return out

    # ---- one change_prot_numa() call under one policy --------------------------------
    def _call(
        self,
        p: Proc,
        pol: int,
        s: int,
        e: int,
        t: int,
        n_targets: int,
        emit: tuple[EventBuilder, list[int], Thread, list[Thread]] | None,
    ) -> bool:
        i0, i1 = p.block_of(s), p.block_of(e)
        m = p.metrics[pol]
        elig = ~p.protnone[pol, i0:i1] & ~p.skip_pin[pol, i0:i1]
        n_el = int(elig.sum())
        thp = p.thp[i0:i1]
        # per-process metrics count guest RAM (the memslot / main region) only; the
        # host-wide vmstat counters also count the heap, stacks, ... (decision 1)
        in_ram = elig & p.region[i0:i1]
        m[M_PTE] += PAGES_PER_BLOCK * int(in_ram.sum())
        m[M_HUGE] += int((in_ram & thp).sum())
        if pol == BASE:
            vs = p.vmstat
            vs["numa_pte_updates"] = vs.get("numa_pte_updates", 0) + PAGES_PER_BLOCK * n_el
            vs["numa_huge_pte_updates"] = vs.get("numa_huge_pte_updates", 0) + int(
                (elig & thp).sum()
            )
        boot_end = t < p.boot_end
        # mmu_lock yield flushes are what the traced kernel did; the counterfactuals
        # follow the replay's counting rules (one flush per invalidation that still zapped something)
        yield_pages = p.spec.zap_yield_pages if boot_end and pol == BASE else 0
        if p.is_vm:
            for gs, ge in self._granules(s, e):
                g0, g1 = p.block_of(gs) - i0, p.block_of(ge) - i0
                m[M_INV] += 1
                ram = p.region[i0 + g0 : i0 + g1]
                nfl = 0
                if pol != PROTECT:
                    if ram.any():
                        m[M_UNMAP] += 1
                    sp = p.spte[pol, i0 + g0 : i0 + g1]
                    zap = ram & (sp == SPTE_PRESENT)
                    if pol == FLAG:
                        zap &= ~p.pinned[i0 + g0 : i0 + g1]
                    z = int(zap.sum())
                    if z:
                        sp[zap] = SPTE_ZAPPED
                        zp = PAGES_PER_BLOCK * z
                        m[M_ZAP] += zp
                        nfl = 1 + ((zp - 1) // yield_pages if yield_pages else 0)
                        m[M_FLUSH] += nfl
                        m[M_IPI] += nfl * n_targets
                if emit is not None:
                    b, cur, me, others = emit
                    common = (me.cpu, me.pid, p.tgid, me.comm)
                    b.add(
                        cur[0],
                        *common,
                        ev.F_NONE,
                        ev.UNMAP,
                        f"mmu notifier unmap range: {gs:#016x} -- {ge:#016x}",
                    )
                    if self.sc.stacks:  # same timestamp: nothing may come between on this CPU
                        b.add(cur[0], *common, ev.F_NONE, ev.STACK, d=ev.ST_NUMA)
                    cur[0] += 2 * US
                    cur[0] += US + 20 * int(nfl and PAGES_PER_BLOCK * z)
                    for _ in range(nfl):
                        cur[0] = self._ipis(
                            b, cur[0], me, p, [o.cpu for o in others], self.k.kvm_ack
                        )
            if pol == PROTECT:
                # .numa_protect() once per PTE / PMD made PROT_NONE inside a memslot (batch=1)
                pr = elig & p.region[i0:i1]
                items = np.where(thp, 1, PAGES_PER_BLOCK)
                m[M_UNMAP] += int(items[pr].sum())
                sp = p.spte[pol, i0:i1]
                zb = pr & (sp == SPTE_PRESENT)
                sp[zb] = SPTE_ZAPPED
                m[M_ZAP] += PAGES_PER_BLOCK * int(zb.sum())
                nfl = int(items[zb].sum())
                m[M_FLUSH] += nfl
                m[M_IPI] += nfl * n_targets
        p.protnone[pol, i0:i1] |= elig
        if n_el:
            m[M_IPI] += n_targets
            if emit is not None:
                self._host_flush(p, emit, elig, thp, s)
        return n_el > 0

    def _host_flush(
        self,
        p: Proc,
        emit: tuple[EventBuilder, list[int], Thread, list[Thread]],
        elig: np.ndarray,
        thp: np.ndarray,
        s: int,
    ) -> None:
        b, cur, me, others = emit
        idx = np.flatnonzero(elig)
        span = (int(idx[-1]) - int(idx[0]) + 1) * BLOCK
        # flush_tlb_mm_range(): more than tlb_single_page_flush_ceiling (33) strides -> all
        stride = BLOCK if bool(thp[idx].all()) else 4096
        pages = -1 if span // stride > 33 else span // 4096
        common = (me.cpu, me.pid, p.tgid, me.comm)
        ts = cur[0]
        if others:
            b.add(ts, *common, ev.F_P1, ev.TLB, f"pages:{pages} reason:{self.r_send} (4)")
            ts = self._ipis(b, ts + US, me, p, [o.cpu for o in others], "flush_tlb_func")
            for o in others:
                b.add(
                    ts + 5 * US,
                    o.cpu,
                    o.pid,
                    p.tgid,
                    o.comm,
                    ev.F_IRQ,
                    ev.TLB,
                    f"pages:{pages} reason:remote shootdown (1)",
                )
        b.add(ts + US, *common, ev.F_D2, ev.TLB, f"pages:{pages} reason:{self.r_local} (3)")
        cur[0] = ts + 8 * US

    # ---- task_numa_work ---------------------------------------------------------------
    def invocation(self, p: Proc, t: int, t_next: int) -> Events:
        b = EventBuilder()
        me = p.threads[p.invocations % len(p.threads)]
        p.invocations += 1
        others = self._running(p, me)
        n_targets = len(others)
        cur = [t]
        pages = self.sc.numa.scan_size_mb << 8
        virt = pages * 8
        if not any(v.end > p.offset for v in p.vmas):
            p.offset, p.seq = 0, p.seq + 1  # reset_ptenuma_scan() before the walk
        start = p.offset
        printed = p.offset
        scanned: list[tuple[int, int]] = []
        stopped = False
        common = (me.cpu, me.pid, p.tgid, me.comm)
        for v in p.vmas:
            if v.end <= start:
                continue
            if v.skip is not None:
                b.add(
                    cur[0],
                    *common,
                    ev.F_NONE,
                    ev.SKIP,
                    f"numa_scan_offset={printed:X} vm_start={v.start:X} vm_end={v.end:X} reason={v.skip}",
                )
                cur[0] += US
                continue
            while True:
                s = max(start, v.start)
                e = min(-(-(s + (pages << 12)) // BLOCK) * BLOCK, v.end)
                changed = self._call(p, BASE, s, e, t, n_targets, (b, cur, me, others))
                for pol in (FLAG, PROTECT):
                    self._call(p, pol, s, e, t, n_targets, None)
                for ps, pe in self._unpinned_pieces(p, s, e):
                    self._call(p, VMAOPT, ps, pe, t, n_targets, None)
                scanned.append((p.block_of(s), p.block_of(e)))
                if changed:
                    pages -= (e - s) >> 12
                virt -= (e - s) >> 12
                start = e
                if pages <= 0 or virt <= 0:
                    stopped = True
                    break
                if e == v.end:
                    break
            if stopped:
                break
        pass_done = not stopped
        p.offset = start if stopped else 0
        if pass_done:
            p.seq += 1
        self._access(p, b, scanned, cur[0] + 10 * US, t, t_next)
        if pass_done:
            self._placements(p, b, t_next)
        return b.finish()

    def _unpinned_pieces(self, p: Proc, s: int, e: int) -> list[tuple[int, int]]:
        """per-vma-optout: the pinned ranges are VMAs of their own, never scanned."""
        pieces = [(s, e)]
        for ps, size in p.pinned_ranges():
            pe = ps + size
            nxt = []
            for a, z in pieces:
                if pe <= a or z <= ps:
                    nxt.append((a, z))
                    continue
                if a < ps:
                    nxt.append((a, ps))
                if pe < z:
                    nxt.append((pe, z))
            pieces = nxt
        return pieces

    # ---- accesses after the scan: refaults, hint faults, migrations -----------------
    def _access(
        self,
        p: Proc,
        b: EventBuilder,
        scanned: list[tuple[int, int]],
        ts0: int,
        t: int,
        t_next: int,
    ) -> None:
        if scanned:
            idx = np.concatenate([np.arange(a, z) for a, z in scanned])
        else:
            idx = np.empty(0, np.int64)
        idx = idx[p.hot[idx] & (p.touch[idx] <= t)]
        boot = np.flatnonzero((p.touch > t) & (p.touch <= t_next))
        for group, is_boot in ((idx, False), (boot, True)):
            if len(group) == 0:
                continue
            tnode = np.array([self.node_of(th.cpu) for th in p.threads], np.int8)[p.owner[group]]
            for pol in (BASE, FLAG, PROTECT, VMAOPT):
                res = self._access_policy(p, pol, group, tnode)
                if pol == BASE:
                    # a vCPU handles one fault (and its migration) at a time: first
                    # touches come after the thread's refaults, never between them
                    ts0 = self._emit_access(p, b, group, res, ts0, is_boot, t_next)

    def _access_policy(
        self, p: Proc, pol: int, idx: np.ndarray, tnode: np.ndarray
    ) -> dict[str, np.ndarray]:
        m = p.metrics[pol]
        ram = p.region[idx] & p.is_vm
        sp = p.spte[pol, idx]
        pn = p.protnone[pol, idx]
        kvm_fault = ram & (sp != SPTE_PRESENT)
        refault = ram & (sp == SPTE_ZAPPED)
        # a vCPU reaches the host PTE only through a KVM fault (GUP in hva_to_pfn)
        hint = pn & (~ram | kvm_fault)
        items = np.where(p.thp[idx], 1, PAGES_PER_BLOCK)
        node = p.node[pol, idx]
        misplaced = hint & (node != tnode)
        fail = misplaced & p.pinned[idx]
        succ = misplaced & ~p.pinned[idx]
        m[M_REFAULT] += int(items[refault].sum())
        m[M_HINT] += int(items[hint & p.region[idx]].sum())
        m[M_MIG_ATT] += int(items[misplaced].sum())
        m[M_MIG_FAIL] += int(items[fail].sum())
        m[M_MIG_PAGES] += PAGES_PER_BLOCK * int(succ.sum())
        if pol == BASE:
            vs = p.vmstat
            vs["numa_hint_faults"] = vs.get("numa_hint_faults", 0) + int(items[hint].sum())
            vs["numa_hint_faults_local"] = vs.get("numa_hint_faults_local", 0) + int(
                items[hint & ~misplaced].sum()
            )
            vs["pgmigrate_fail"] = vs.get("pgmigrate_fail", 0) + PAGES_PER_BLOCK * int(fail.sum())
            np.add.at(p.tally, (p.owner[idx[hint]], node[hint].astype(np.int64)), items[hint])
        p.node[pol, idx[succ]] = tnode[succ]
        p.spte[pol, idx[ram]] = SPTE_PRESENT
        p.protnone[pol, idx[hint]] = False
        return {"kvm_fault": kvm_fault, "hint": hint, "succ": succ, "fail": fail, "items": items}

    def _emit_access(
        self,
        p: Proc,
        b: EventBuilder,
        idx: np.ndarray,
        res: dict[str, np.ndarray],
        ts0: int,
        is_boot: bool,
        t_next: int,
    ) -> int:
        """Emit the baseline's accesses; returns when the last one's events are over."""
        visible = res["kvm_fault"] if p.is_vm else res["hint"]
        sel = np.flatnonzero(visible)
        if len(sel) == 0:
            return ts0
        order = sel[np.lexsort((idx[sel], p.owner[idx[sel]]))]
        blocks = idx[order]
        n_items = res["items"][order]
        total = int(n_items.sum())
        rep = np.repeat(np.arange(len(blocks)), n_items)
        first = np.cumsum(n_items) - n_items
        within = np.arange(total) - first[rep]
        blk = blocks[rep]
        thp = p.thp[blk]
        page_off = np.where(thp, 0, within).astype(np.uint64) * np.uint64(4096)
        owner = p.owner[blk]
        # per-thread running index -> timestamps spaced evenly inside the window
        counts = np.bincount(owner, minlength=len(p.threads))
        budget = max(t_next - ts0, 1) * 6 // 10
        spacing = max(1, min(2 * US, budget // max(int(counts.max()), 1)))
        start_of = np.cumsum(counts) - counts
        j = np.arange(total) - start_of[owner]
        if is_boot:
            spacing = 200
            # the simulation applies a first touch in (t, t_next] after this call's
            # zaps: its events must come after them too (ts0), still one per
            # ``spacing`` per thread so a migration's events stay together
            ts = np.maximum(p.touch[blk] + within * spacing, ts0 + j * spacing)
        else:
            ts = ts0 + j * spacing
        end = int(ts.max()) + spacing
        cpu = np.array([th.cpu for th in p.threads], np.int32)[owner]
        pid = np.array([th.pid for th in p.threads], np.int32)[owner]
        comm = np.array([th.comm for th in p.threads], np.int32)[owner]
        hva = p.addr[blk] + page_off
        wr = p.write[blk]
        ncol = {"cpu": cpu, "pid": pid, "tgid": p.tgid, "comm": comm}
        if p.is_vm:
            gpa = hva - np.uint64(p.ram_start)
            rip = np.uint64(GUEST_RIP) + self.rng.integers(0, 0x400000, total).astype(np.uint64)
            # EPT exit qualification of a not-present entry: bits 3..5 clear
            code = np.where(wr, 0x182, 0x181).astype(np.uint64)
            b.add_vec(
                total, ts=ts, **ncol, flags=ev.F_NONE, name=ev.KVM_PF, a=gpa, b=rip, c=code, d=owner
            )
        else:
            code = np.where(wr, 0x6, 0x4).astype(np.uint64)
            addr = hva + self.rng.integers(0, 512, total).astype(np.uint64) * np.uint64(8)
            b.add_vec(
                total,
                ts=ts,
                **ncol,
                flags=ev.F_D,
                name=ev.PF_USER,
                a=addr,
                b=USER_IP,
                c=code,
            )
        mig = (res["succ"] | res["fail"])[order][rep]
        if not mig.any():
            return end
        mi = np.flatnonzero(mig)
        n = len(mi)
        sub = {k: (v[mi] if isinstance(v, np.ndarray) else v) for k, v in ncol.items()}
        size = np.where(thp[mi], BLOCK, 4096).astype(np.uint64)
        step = max(spacing // 4, 1)
        if p.is_vm:
            b.add_vec(
                n,
                ts=ts[mi] + step,
                **sub,
                flags=ev.F_NONE,
                name=ev.UNMAP,
                a=hva[mi],
                b=hva[mi] + size,
            )
            if self.sc.stacks:
                b.add_vec(
                    n, ts=ts[mi] + 2 * step, **sub, flags=ev.F_NONE, name=ev.STACK, d=ev.ST_MIGRATE
                )
        ok = res["succ"][order][rep][mi]
        ppi = np.where(thp[mi], PAGES_PER_BLOCK, 1)
        b.add_vec(
            n,
            ts=ts[mi] + 3 * step,
            **sub,
            flags=ev.F_NONE,
            name=ev.MIGRATE,
            a=np.where(ok, ppi, 0),
            b=np.where(ok, 0, ppi),
            c=np.where(ok & thp[mi], 1, 0),
            d=np.where(~ok & thp[mi], 1, 0),
        )
        return end

    # ---- task placement at the end of a pass (multi-node hosts) ----------------------
    def _placements(self, p: Proc, b: EventBuilder, t_next: int) -> None:
        tally, p.tally = p.tally, np.zeros_like(p.tally)
        if self.sc.host.nodes < 2:
            return
        busy = {th.cpu for q in self.procs for th in q.threads}
        ts = t_next - 200 * US
        for th in p.threads:
            if tally[th.index].sum() == 0:
                continue
            pref = int(np.argmax(tally[th.index]))
            src_nid = self.node_of(th.cpu)
            if pref == src_nid:
                continue
            free = [
                c
                for c in range(pref * self.cpus_per_node, (pref + 1) * self.cpus_per_node)
                if c not in busy
            ]
            mate = next(
                (
                    o
                    for o in p.threads
                    if self.node_of(o.cpu) == pref and int(np.argmax(tally[o.index])) != pref
                ),
                None,
            )
            head = f"pid={th.pid} tgid={p.tgid} ngid=0 src_cpu={th.cpu} src_nid={src_nid}"
            pair = (
                f"src_pid={th.pid} src_tgid={p.tgid} src_ngid=0 src_cpu={th.cpu} src_nid={src_nid}"
            )
            if free:
                dst = free[0]
                b.add(
                    ts,
                    th.cpu,
                    th.pid,
                    p.tgid,
                    th.comm,
                    ev.F_NONE,
                    ev.MOVE,
                    f"{head} dst_cpu={dst} dst_nid={pref}",
                )
                busy.discard(th.cpu)
                busy.add(dst)
                th.cpu = dst
            elif mate is not None:
                b.add(
                    ts,
                    th.cpu,
                    th.pid,
                    p.tgid,
                    th.comm,
                    ev.F_NONE,
                    ev.SWAP,
                    f"{pair} dst_pid={mate.pid} dst_tgid={p.tgid} dst_ngid=0 "
                    f"dst_cpu={mate.cpu} dst_nid={pref}",
                )
                th.cpu, mate.cpu = mate.cpu, th.cpu
            else:
                b.add(
                    ts,
                    th.cpu,
                    th.pid,
                    p.tgid,
                    th.comm,
                    ev.F_NONE,
                    ev.STICK,
                    f"{pair} dst_pid=-1 dst_tgid=-1 dst_ngid=-1 dst_cpu=-1 dst_nid=-1",
                )
            ts += 2 * US
            # placements are held fixed across policies (see the package docstring)
            for pol in (BASE, FLAG, PROTECT, VMAOPT):
                p.metrics[pol, M_PLACE] += 1
        assert MMOPT not in (BASE, FLAG, PROTECT, VMAOPT)

    # ---- driver -------------------------------------------------------------------------
    def schedule(self) -> list[tuple[int, int, int]]:
        """(time, process index, next time of that process) of every task_numa_work call."""
        out = []
        for i, _p in enumerate(self.procs):
            period = self.sc.numa.scan_period_min_ms * 1_000_000
            t = self.t0 + self.sc.numa.scan_delay_ms * 1_000_000 + 37 * US * (i + 1)
            times = []
            while t < self.end:
                times.append(t)
                t += period
            for k, tk in enumerate(times):
                nxt = times[k + 1] if k + 1 < len(times) else self.end
                out.append((tk, i, nxt))
        return sorted(out)

    def run(self) -> Iterator[Events]:
        pending: list[Events] = []
        for t, i, t_next in self.schedule():
            if pending:
                merged = Events.concat(pending).sorted()
                cut = int(np.searchsorted(merged.cols["ts"], t, side="left"))
                if cut:
                    yield merged.take(np.arange(cut))
                pending = [merged.take(np.arange(cut, len(merged)))]
            pending.append(self.invocation(self.procs[i], t, t_next))
        if pending:
            yield Events.concat(pending).sorted()


__all__ = ["Simulator", "cpumask_list"]
