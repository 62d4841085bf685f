"""Small hand-written traces in each text layout, with the values they must decode to.

Lines are copied from real outputs of the 6.18 kernel's tracefs, trace-cmd
report 3.1.6 and perf script, then edited to cover each case.
"""

TRACEFS_FULL = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 15/15   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     TGID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |        |   |||||     |         |
 qemu-system-x86-4243    (   4242) [001] .....  1234.567890: kvm_unmap_hva_range: mmu notifier unmap range: 0x007f0000000000 -- 0x007f0010000000
 qemu-system-x86-4243    (   4242) [001] .....  1234.567891: <stack trace>
 => trace_event_raw_event_kvm_unmap_hva_range
 => kvm_mmu_notifier_invalidate_range_start
 => __mmu_notifier_invalidate_range_start
 => change_protection
 => change_prot_numa
 => task_numa_work
 => task_work_run
          <idle>-0       (-------) [000] d..2.  1234.567900: tlb_flush: pages:-1 reason:flush on task switch (0)
 qemu-system-x86-4244    (   4242) [000] d..1.  1234.568000: tlb_flush: pages:1 reason:local MM shootdown (3)
 qemu-system-x86-4244    (   4242) [000] d..1.  1234.568001: ipi_send_cpumask: cpumask=0-1,3 callsite=on_each_cpu_cond_mask+0x24/0x40 callback=flush_tlb_func+0x0/0x1d0
 qemu-system-x86-4244    (   4242) [000] d....  1234.568100: page_fault_user: address=0x7f0000001000 ip=0x55d000001234 error_code=0x6
CPU:1 [LOST 42 EVENTS]
 qemu-system-x86-4243    (   4242) [001] .....  1234.569000: sched_skip_vma_numa: numa_scan_offset=7F0000000000 vm_start=7F0000000000 vm_end=7F0010000000 reason=scan_delay
 qemu-system-x86-4243    (   4242) [001] .....  1234.569100: mm_migrate_pages: nr_succeeded=3 nr_failed=1 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_ASYNC reason=numa_misplaced
 qemu-system-x86-4243    (   4242) [001] .....  1234.569200: sched_move_numa: pid=4243 tgid=4242 ngid=0 src_cpu=1 src_nid=0 dst_cpu=0 dst_nid=1
 qemu-system-x86-4243    (   4242) [001] .....  1234.569300: sched_swap_numa: src_pid=4243 src_tgid=4242 src_ngid=0 src_cpu=1 src_nid=0 dst_pid=4244 dst_tgid=4242 dst_ngid=0 dst_cpu=0 dst_nid=1
 qemu-system-x86-4243    (   4242) [001] .....  1234.569400: my_custom_event: foo=1 bar="baz"
 qemu-system-x86-4243    (   4242) [001] .....  1234.569450: my_free_text: something happened: x -- y
 qemu-system-x86-4243    (   4242) [001] .....  1234.569500: kvm_page_fault: vcpu 0 rip 0xfff0 address 0x0000000000100000 error_code 0x181
 qemu-system-x86-4243    (   4242) [001] .....  1234.569600: ipi_send_cpu: cpu=1 callsite=kvm_make_all_cpus_request+0x100/0x200 callback=ack_kick+0x0/0x10
 qemu-system-x86-4243    (   4242) [001] .....  1234.569700: sched_switch: prev_comm=Web Content prev_pid=4243 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
"""

TRACEFS_PLAIN = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 2/2   #P:4
#
#           TASK-PID     CPU#     TIMESTAMP  FUNCTION
#              | |         |         |         |
            bash-1234    [003]  5678.000001: tlb_flush: pages:1 reason:remote shootdown (1)
 kworker/u8:2-ev-77      [000]  5678.000123: page_fault_user: address=0x7f0000002000 ip=0x7f0000002000 error_code=0x14
"""

TRACE_CMD_REPORT = """\
cpus=2
     qemu-kvm-4243  [001]  1234.567890: kvm_unmap_hva_range:  mmu notifier unmap range: 0x007f0000000000 -- 0x007f0010000000
     qemu-kvm-4243  [001]  1234.567891: kernel_stack:         <stack trace >
=> trace_event_raw_event_kvm_unmap_hva_range (ffffffff8127bd2d)
=> change_prot_numa (ffffffff81000000)
=> task_numa_work (ffffffff81000100)
     qemu-kvm-4244  [000]  1234.568000: tlb_flush:            pages=1 reason=local mm shootdown (3)
     qemu-kvm-4244  [000]  1234.568001: ipi_send_cpu:         cpu=0 callsite=ttwu_queue_wakelist+0x11d callback=generic_smp_call_function_single_interrupt+0x0
CPU:0 [3 EVENTS DROPPED]
     qemu-kvm-4244  [000]  1234.568100: page_fault_user:      address=0x7f0000001000 ip=0x55d000001234 error_code=0x6
"""

PERF_SCRIPT = """\
qemu-system-x86  4243 [001]  1234.567890: kvm:kvm_unmap_hva_range: mmu notifier unmap range: 0x007f0000000000 -- 0x007f0010000000
\tffffffff8127bd2d trace_event_raw_event_kvm_unmap_hva_range+0xfd ([kernel.kallsyms])
\tffffffff81000000 change_prot_numa+0x10 ([kernel.kallsyms])
\tffffffff81000100 task_numa_work+0x1f0 ([kernel.kallsyms])

qemu-system-x86 4242/4244 [000]  1234.568000: tlb:tlb_flush: pages:1 reason:local MM shootdown (3)
"""
