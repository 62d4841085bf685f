"""Real tracefs ``format`` files of the 6.18 kernel (x86_64) for the events tracereplay knows.

Read from ``/sys/kernel/tracing/events/<system>/<name>/format`` on the machine that recorded
the fixtures (6.18.44). Each entry is ``name: (system, id, body)`` where ``body`` is the file after
the four common fields (which every format shares, see :data:`COMMON`). Generated data, not code.
"""

from __future__ import annotations

# sched_stick_numa and sched_swap_numa share one layout (both TP_PROTO(src, dst) in
# include/trace/events/sched.h)
_NUMA_PAIR = (
    "\tfield:pid_t src_pid;\toffset:8;\tsize:4;\tsigned:1;\n"
    "\tfield:pid_t src_tgid;\toffset:12;\tsize:4;\tsigned:1;\n"
    "\tfield:pid_t src_ngid;\toffset:16;\tsize:4;\tsigned:1;\n"
    "\tfield:int src_cpu;\toffset:20;\tsize:4;\tsigned:1;\n"
    "\tfield:int src_nid;\toffset:24;\tsize:4;\tsigned:1;\n"
    "\tfield:pid_t dst_pid;\toffset:28;\tsize:4;\tsigned:1;\n"
    "\tfield:pid_t dst_tgid;\toffset:32;\tsize:4;\tsigned:1;\n"
    "\tfield:pid_t dst_ngid;\toffset:36;\tsize:4;\tsigned:1;\n"
    "\tfield:int dst_cpu;\toffset:40;\tsize:4;\tsigned:1;\n"
    "\tfield:int dst_nid;\toffset:44;\tsize:4;\tsigned:1;\n"
    "\n"
    'print fmt: "src_pid=%d src_tgid=%d src_ngid=%d src_cpu=%d src_nid=%d dst_pid=%d dst_tgid=%d dst_ngid=%d dst_cpu=%d dst_nid=%d", REC->src_pid, REC->src_tgid, REC->src_ngid, REC->src_cpu, REC->src_nid, REC->dst_pid, REC->dst_tgid, REC->dst_ngid, REC->dst_cpu, REC->dst_nid\n'
)

HEADER_PAGE = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n"
HEADER_EVENT = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n"
COMMON = (
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
    "\n"
)
FORMATS: dict[str, tuple[str, int, str]] = {
    "csd_queue_cpu": (
        "csd",
        529,
        "\tfield:unsigned int cpu;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:void * callsite;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:void * func;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\tfield:void * csd;\toffset:32;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "cpu=%u callsite=%pS func=%ps csd=%p", REC->cpu, REC->callsite, REC->func, REC->csd\n',
    ),
    "page_fault_kernel": (
        "exceptions",
        189,
        "\tfield:unsigned long address;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long ip;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long error_code;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "address=%ps ip=%ps error_code=0x%lx", (void *)REC->address, (void *)REC->ip, REC->error_code\n',
    ),
    "page_fault_user": (
        "exceptions",
        190,
        "\tfield:unsigned long address;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long ip;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long error_code;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "address=%ps ip=%ps error_code=0x%lx", (void *)REC->address, (void *)REC->ip, REC->error_code\n',
    ),
    "bprint": (
        "ftrace",
        6,
        "\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:const char * fmt;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:u32 buf[];\toffset:24;\tsize:0;\tsigned:0;\n"
        "\n"
        'print fmt: "%ps: %s", (void *)REC->ip, REC->fmt\n',
    ),
    "function": (
        "ftrace",
        1,
        "\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long parent_ip;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long args[];\toffset:24;\tsize:0;\tsigned:0;\n"
        "\n"
        'print fmt: " %ps <-- %ps", (void *)REC->ip, (void *)REC->parent_ip\n',
    ),
    "kernel_stack": (
        "ftrace",
        4,
        "\tfield:int size;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:unsigned long caller[8];\toffset:16;\tsize:64;\tsigned:0;\n"
        "\n"
        'print fmt: "\\t=> %ps\\n\\t=> %ps\\n\\t=> %ps\\n" "\\t=> %ps\\n\\t=> %ps\\n\\t=> %ps\\n" "\\t=> %ps\\n\\t=> %ps\\n", (void *)REC->caller[0], (void *)REC->caller[1], (void *)REC->caller[2], (void *)REC->caller[3], (void *)REC->caller[4], (void *)REC->caller[5], (void *)REC->caller[6], (void *)REC->caller[7]\n',
    ),
    "print": (
        "ftrace",
        5,
        "\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:char buf[];\toffset:16;\tsize:0;\tsigned:0;\n"
        "\n"
        'print fmt: "%ps: %s", (void *)REC->ip, REC->buf\n',
    ),
    "user_stack": (
        "ftrace",
        13,
        "\tfield:unsigned int tgid;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:unsigned long caller[8];\toffset:16;\tsize:64;\tsigned:0;\n"
        "\n"
        'print fmt: "\\t=> %ps\\n\\t=> %ps\\n\\t=> %ps\\n" "\\t=> %ps\\n\\t=> %ps\\n\\t=> %ps\\n" "\\t=> %ps\\n\\t=> %ps\\n", (void *)REC->caller[0], (void *)REC->caller[1], (void *)REC->caller[2], (void *)REC->caller[3], (void *)REC->caller[4], (void *)REC->caller[5], (void *)REC->caller[6], (void *)REC->caller[7]\n',
    ),
    "ipi_send_cpu": (
        "ipi",
        354,
        "\tfield:unsigned int cpu;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:void * callsite;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:void * callback;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "cpu=%u callsite=%pS callback=%pS", REC->cpu, REC->callsite, REC->callback\n',
    ),
    "ipi_send_cpumask": (
        "ipi",
        353,
        "\tfield:__data_loc cpumask_t cpumask;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:void * callsite;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:void * callback;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "cpumask=%s callsite=%pS callback=%pS", __get_cpumask(cpumask), REC->callsite, REC->callback\n',
    ),
    "irq_handler_entry": (
        "irq",
        225,
        "\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "irq=%d name=%s", REC->irq, __get_str(name)\n',
    ),
    "irq_handler_exit": (
        "irq",
        224,
        "\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:int ret;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "irq=%d ret=%s", REC->irq, REC->ret ? "handled" : "unhandled"\n',
    ),
    "softirq_entry": (
        "irq",
        223,
        "\tfield:unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "vec=%u [action=%s]", REC->vec, __print_symbolic(REC->vec, { 0, "HI" }, { 1, "TIMER" }, { 2, "NET_TX" }, { 3, "NET_RX" }, { 4, "BLOCK" }, { 5, "IRQ_POLL" }, { 6, "TASKLET" }, { 7, "SCHED" }, { 8, "HRTIMER" }, { 9, "RCU" })\n',
    ),
    "softirq_exit": (
        "irq",
        222,
        "\tfield:unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "vec=%u [action=%s]", REC->vec, __print_symbolic(REC->vec, { 0, "HI" }, { 1, "TIMER" }, { 2, "NET_TX" }, { 3, "NET_RX" }, { 4, "BLOCK" }, { 5, "IRQ_POLL" }, { 6, "TASKLET" }, { 7, "SCHED" }, { 8, "HRTIMER" }, { 9, "RCU" })\n',
    ),
    "softirq_raise": (
        "irq",
        221,
        "\tfield:unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "vec=%u [action=%s]", REC->vec, __print_symbolic(REC->vec, { 0, "HI" }, { 1, "TIMER" }, { 2, "NET_TX" }, { 3, "NET_RX" }, { 4, "BLOCK" }, { 5, "IRQ_POLL" }, { 6, "TASKLET" }, { 7, "SCHED" }, { 8, "HRTIMER" }, { 9, "RCU" })\n',
    ),
    "kvm_age_hva": (
        "kvm",
        26,
        "\tfield:unsigned long start;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long end;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "mmu notifier age hva: %#016lx -- %#016lx", REC->start, REC->end\n',
    ),
    "kvm_entry": (
        "kvm",
        115,
        "\tfield:unsigned int vcpu_id;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:unsigned long rip;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:bool immediate_exit;\toffset:24;\tsize:1;\tsigned:0;\n"
        "\tfield:u32 intr_info;\toffset:28;\tsize:4;\tsigned:0;\n"
        "\tfield:u32 error_code;\toffset:32;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "vcpu %u, rip 0x%lx intr_info 0x%08x error_code 0x%08x%s", REC->vcpu_id, REC->rip, REC->intr_info, REC->error_code, REC->immediate_exit ? "[immediate exit]" : ""\n',
    ),
    "kvm_exit": (
        "kvm",
        103,
        "\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:unsigned long guest_rip;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:u32 isa;\toffset:24;\tsize:4;\tsigned:0;\n"
        "\tfield:u64 info1;\toffset:32;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 info2;\toffset:40;\tsize:8;\tsigned:0;\n"
        "\tfield:u32 intr_info;\toffset:48;\tsize:4;\tsigned:0;\n"
        "\tfield:u32 error_code;\toffset:52;\tsize:4;\tsigned:0;\n"
        "\tfield:unsigned int vcpu_id;\toffset:56;\tsize:4;\tsigned:0;\n"
        "\tfield:u64 requests;\toffset:64;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x requests 0x%016llx", REC->vcpu_id, (REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, { 0, "EXCEPTION_NMI" }, { 1, "EXTERNAL_INTERRUPT" }, { 2, "TRIPLE_FAULT" }, { 3, "INIT_SIGNAL" }, { 4, "SIPI_SIGNAL" }, { 7, "INTERRUPT_WINDOW" }, { 8, "NMI_WINDOW" }, { 9, "TASK_SWITCH" }, { 10, "CPUID" }, { 12, "HLT" }, { 13, "INVD" }, { 14, "INVLPG" }, { 15, "RDPMC" }, { 16, "RDTSC" }, { 18, "VMCALL" }, { 19, "VMCLEAR" }, { 20, "VMLAUNCH" }, { 21, "VMPTRLD" }, { 22, "VMPTRST" }, { 23, "VMREAD" }, { 24, "VMRESUME" }, { 25, "VMWRITE" }, { 26, "VMOFF" }, { 27, "VMON" }, { 28, "CR_ACCESS" }, { 29, "DR_ACCESS" }, { 30, "IO_INSTRUCTION" }, { 31, "MSR_READ" }, { 32, "MSR_WRITE" }, { 33, "INVALID_STATE" }, { 34, "MSR_LOAD_FAIL" }, { 36, "MWAIT_INSTRUCTION" }, { 37, "MONITOR_TRAP_FLAG" }, { 39, "MONITOR_INSTRUCTION" }, { 40, "PAUSE_INSTRUCTION" }, { 41, "MCE_DURING_VMENTRY" }, { 43, "TPR_BELOW_THRESHOLD" }, { 44, "APIC_ACCESS" }, { 45, "EOI_INDUCED" }, { 46, "GDTR_IDTR" }, { 47, "LDTR_TR" }, { 48, "EPT_VIOLATION" }, { 49, "EPT_MISCONFIG" }, { 50, "INVEPT" }, { 51, "RDTSCP" }, { 52, "PREEMPTION_TIMER" }, { 53, "INVVPID" }, { 54, "WBINVD" }, { 55, "XSETBV" }, { 56, "APIC_WRITE" }, { 57, "RDRAND" }, { 58, "INVPCID" }, { 59, "VMFUNC" }, { 60, "ENCLS" }, { 61, "RDSEED" }, { 62, "PML_FULL" }, { 63, "XSAVES" }, { 64, "XRSTORS" }, { 67, "UMWAIT" }, { 68, "TPAUSE" }, { 74, "BUS_LOCK" }, { 75, "NOTIFY" }, { 77, "TDCALL" }, { 84, "MSR_READ_IMM" }, { 85, "MSR_WRITE_IMM" }) : __print_symbolic(REC->exit_reason, { 0x000, "read_cr0" }, { 0x002, "read_cr2" }, { 0x003, "read_cr3" }, { 0x004, "read_cr4" }, { 0x008, "read_cr8" }, { 0x010, "write_cr0" }, { 0x012, "write_cr2" }, { 0x013, "write_cr3" }, { 0x014, "write_cr4" }, { 0x018, "write_cr8" }, { 0x020, "read_dr0" }, { 0x021, "read_dr1" }, { 0x022, "read_dr2" }, { 0x023, "read_dr3" }, { 0x024, "read_dr4" }, { 0x025, "read_dr5" }, { 0x026, "read_dr6" }, { 0x027, "read_dr7" }, { 0x030, "write_dr0" }, { 0x031, "write_dr1" }, { 0x032, "write_dr2" }, { 0x033, "write_dr3" }, { 0x034, "write_dr4" }, { 0x035, "write_dr5" }, { 0x036, "write_dr6" }, { 0x037, "write_dr7" }, { 0x040 + 0, "DE excp" }, { 0x040 + 1, "DB excp" }, { 0x040 + 3, "BP excp" }, { 0x040 + 4, "OF excp" }, { 0x040 + 5, "BR excp" }, { 0x040 + 6, "UD excp" }, { 0x040 + 7, "NM excp" }, { 0x040 + 8, "DF excp" }, { 0x040 + 10, "TS excp" }, { 0x040 + 11, "NP excp" }, { 0x040 + 12, "SS excp" }, { 0x040 + 13, "GP excp" }, { 0x040 + 14, "PF excp" }, { 0x040 + 16, "MF excp" }, { 0x040 + 17, "AC excp" }, { 0x040 + 18, "MC excp" }, { 0x040 + 19, "XF excp" }, { 0x060, "interrupt" }, { 0x061, "nmi" }, { 0x062, "smi" }, { 0x063, "init" }, { 0x064, "vintr" }, { 0x065, "cr0_sel_write" }, { 0x066, "read_idtr" }, { 0x067, "read_gdtr" }, { 0x068, "read_ldtr" }, { 0x069, "read_rt" }, { 0x06a, "write_idtr" }, { 0x06b, "write_gdtr" }, { 0x06c, "write_ldtr" }, { 0x06d, "write_rt" }, { 0x06e, "rdtsc" }, { 0x06f, "rdpmc" }, { 0x070, "pushf" }, { 0x071, "popf" }, { 0x072, "cpuid" }, { 0x073, "rsm" }, { 0x074, "iret" }, { 0x075, "swint" }, { 0x076, "invd" }, { 0x077, "pause" }, { 0x078, "hlt" }, { 0x079, "invlpg" }, { 0x07a, "invlpga" }, { 0x07b, "io" }, { 0x07c, "msr" }, { 0x07d, "task_switch" }, { 0x07e, "ferr_freeze" }, { 0x07f, "shutdown" }, { 0x080, "vmrun" }, { 0x081, "hypercall" }, { 0x082, "vmload" }, { 0x083, "vmsave" }, { 0x084, "stgi" }, { 0x085, "clgi" }, { 0x086, "skinit" }, { 0x087, "rdtscp" }, { 0x088, "icebp" }, { 0x089, "wbinvd" }, { 0x08a, "monitor" }, { 0x08b, "mwait" }, { 0x08d, "xsetbv" }, { 0x08f, "write_efer_trap" }, { 0x090, "write_cr0_trap" }, { 0x094, "write_cr4_trap" }, { 0x098, "write_cr8_trap" }, { 0x0a2, "invpcid" }, { 0x0a5, "buslock" }, { 0x0a6, "idle-halt" }, { 0x400, "npf" }, { 0x401, "avic_incomplete_ipi" }, { 0x402, "avic_unaccelerated_access" }, { 0x403, "vmgexit" }, { 0x80000001, "vmgexit_mmio_read" }, { 0x80000002, "vmgexit_mmio_write" }, { 0x80000003, "vmgexit_nmi_complete" }, { 0x80000004, "vmgexit_ap_hlt_loop" }, { 0x80000005, "vmgexit_ap_jump_table" }, { 0x80000010, "vmgexit_page_state_change" }, { 0x80000011, "vmgexit_guest_request" }, { 0x80000012, "vmgexit_ext_guest_request" }, { 0x80000013, "vmgexit_ap_creation" }, { 0x8000fffd, "vmgexit_hypervisor_feature" }, { -1, "invalid_guest_state" }), (REC->isa == 1 && REC->exit_reason & ~0xffff) ? " " : "", (REC->isa == 1) ? __print_flags(REC->exit_reason & ~0xffff, " ", { 0x80000000, "FAILED_VMENTRY" }) : "", REC->guest_rip, REC->info1, REC->info2, REC->intr_info, REC->error_code, REC->requests\n',
    ),
    "kvm_fpu": (
        "kvm",
        37,
        "\tfield:u32 load;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "%s", __print_symbolic(REC->load, {0, "unload"}, {1, "load"})\n',
    ),
    "kvm_mmio": (
        "kvm",
        38,
        "\tfield:u32 type;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:u32 len;\toffset:12;\tsize:4;\tsigned:0;\n"
        "\tfield:u64 gpa;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 val;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "mmio %s len %u gpa 0x%llx val 0x%llx", __print_symbolic(REC->type, { 0, "unsatisfied-read" }, { 1, "read" }, { 2, "write" }), REC->len, REC->gpa, REC->val\n',
    ),
    "kvm_page_fault": (
        "kvm",
        100,
        "\tfield:unsigned int vcpu_id;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:unsigned long guest_rip;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 fault_address;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 error_code;\toffset:32;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "vcpu %u rip 0x%lx address 0x%016llx error_code 0x%llx", REC->vcpu_id, REC->guest_rip, REC->fault_address, REC->error_code\n',
    ),
    "kvm_pv_tlb_flush": (
        "kvm",
        51,
        "\tfield:unsigned int vcpu_id;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:bool need_flush_tlb;\toffset:12;\tsize:1;\tsigned:0;\n"
        "\n"
        'print fmt: "vcpu %u need_flush_tlb %s", REC->vcpu_id, REC->need_flush_tlb ? "true" : "false"\n',
    ),
    "kvm_test_age_hva": (
        "kvm",
        25,
        "\tfield:unsigned long hva;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "mmu notifier test age hva: %#016lx", REC->hva\n',
    ),
    "kvm_unmap_hva_range": (
        "kvm",
        27,
        "\tfield:unsigned long start;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long end;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "mmu notifier unmap range: %#016lx -- %#016lx", REC->start, REC->end\n',
    ),
    "kvm_userspace_exit": (
        "kvm",
        42,
        "\tfield:__u32 reason;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "reason %s (%d)", REC->errno < 0 ? (REC->errno == -4 ? "restart" : "error") : __print_symbolic(REC->reason, { 0, "KVM_EXIT_" "UNKNOWN" }, { 1, "KVM_EXIT_" "EXCEPTION" }, { 2, "KVM_EXIT_" "IO" }, { 3, "KVM_EXIT_" "HYPERCALL" }, { 4, "KVM_EXIT_" "DEBUG" }, { 5, "KVM_EXIT_" "HLT" }, { 6, "KVM_EXIT_" "MMIO" }, { 7, "KVM_EXIT_" "IRQ_WINDOW_OPEN" }, { 8, "KVM_EXIT_" "SHUTDOWN" }, { 9, "KVM_EXIT_" "FAIL_ENTRY" }, { 10, "KVM_EXIT_" "INTR" }, { 11, "KVM_EXIT_" "SET_TPR" }, { 12, "KVM_EXIT_" "TPR_ACCESS" }, { 13, "KVM_EXIT_" "S390_SIEIC" }, { 14, "KVM_EXIT_" "S390_RESET" }, { 15, "KVM_EXIT_" "DCR" }, { 16, "KVM_EXIT_" "NMI" }, { 17, "KVM_EXIT_" "INTERNAL_ERROR" }, { 18, "KVM_EXIT_" "OSI" }, { 19, "KVM_EXIT_" "PAPR_HCALL" }, { 20, "KVM_EXIT_" "S390_UCONTROL" }, { 21, "KVM_EXIT_" "WATCHDOG" }, { 22, "KVM_EXIT_" "S390_TSCH" }, { 23, "KVM_EXIT_" "EPR" }, { 24, "KVM_EXIT_" "SYSTEM_EVENT" }, { 25, "KVM_EXIT_" "S390_STSI" }, { 26, "KVM_EXIT_" "IOAPIC_EOI" }, { 27, "KVM_EXIT_" "HYPERV" }, { 28, "KVM_EXIT_" "ARM_NISV" }, { 29, "KVM_EXIT_" "X86_RDMSR" }, { 30, "KVM_EXIT_" "X86_WRMSR" }), REC->errno < 0 ? -REC->errno : REC->reason\n',
    ),
    "kvm_vcpu_wakeup": (
        "kvm",
        41,
        "\tfield:__u64 ns;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:bool waited;\toffset:16;\tsize:1;\tsigned:0;\n"
        "\tfield:bool valid;\toffset:17;\tsize:1;\tsigned:0;\n"
        "\n"
        'print fmt: "%s time %lld ns, polling %s", REC->waited ? "wait" : "poll", REC->ns, REC->valid ? "valid" : "invalid"\n',
    ),
    "kvm_mmu_set_spte": (
        "kvmmmu",
        119,
        "\tfield:u64 gfn;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 spte;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 sptep;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\tfield:u8 level;\toffset:32;\tsize:1;\tsigned:0;\n"
        "\tfield:bool r;\toffset:33;\tsize:1;\tsigned:0;\n"
        "\tfield:bool x;\toffset:34;\tsize:1;\tsigned:0;\n"
        "\tfield:signed char u;\toffset:35;\tsize:1;\tsigned:1;\n"
        "\n"
        'print fmt: "gfn %llx spte %llx (%s%s%s%s) level %d at %llx", REC->gfn, REC->spte, REC->r ? "r" : "-", REC->spte & (1ULL << 1) ? "w" : "-", REC->x ? "x" : "-", REC->u == -1 ? "" : (REC->u ? "u" : "-"), REC->level, REC->sptep\n',
    ),
    "kvm_tdp_mmu_spte_changed": (
        "kvmmmu",
        117,
        "\tfield:u64 gfn;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 old_spte;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:u64 new_spte;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\tfield:u8 level;\toffset:32;\tsize:1;\tsigned:0;\n"
        "\tfield:u8 as_id;\toffset:33;\tsize:1;\tsigned:0;\n"
        "\n"
        'print fmt: "as id %d gfn %llx level %d old_spte %llx new_spte %llx", REC->as_id, REC->gfn, REC->level, REC->old_spte, REC->new_spte\n',
    ),
    "mm_migrate_pages": (
        "migrate",
        713,
        "\tfield:unsigned long succeeded;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long failed;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long thp_succeeded;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long thp_failed;\toffset:32;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long thp_split;\toffset:40;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long large_folio_split;\toffset:48;\tsize:8;\tsigned:0;\n"
        "\tfield:enum migrate_mode mode;\toffset:56;\tsize:4;\tsigned:0;\n"
        "\tfield:int reason;\toffset:60;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "nr_succeeded=%lu nr_failed=%lu nr_thp_succeeded=%lu nr_thp_failed=%lu nr_thp_split=%lu nr_split=%lu mode=%s reason=%s", REC->succeeded, REC->failed, REC->thp_succeeded, REC->thp_failed, REC->thp_split, REC->large_folio_split, __print_symbolic(REC->mode, {0, "MIGRATE_ASYNC"}, {1, "MIGRATE_SYNC_LIGHT"}, {2, "MIGRATE_SYNC"}), __print_symbolic(REC->reason, {0, "compaction"}, {1, "memory_failure"}, {2, "memory_hotplug"}, {3, "syscall_or_cpuset"}, {4, "mempolicy_mbind"}, {5, "numa_misplaced"}, {6, "contig_range"}, {7, "longterm_pin"}, {8, "demotion"}, {9, "damon"})\n',
    ),
    "mm_migrate_pages_start": (
        "migrate",
        712,
        "\tfield:enum migrate_mode mode;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:int reason;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "mode=%s reason=%s", __print_symbolic(REC->mode, {0, "MIGRATE_ASYNC"}, {1, "MIGRATE_SYNC_LIGHT"}, {2, "MIGRATE_SYNC"}), __print_symbolic(REC->reason, {0, "compaction"}, {1, "memory_failure"}, {2, "memory_hotplug"}, {3, "syscall_or_cpuset"}, {4, "mempolicy_mbind"}, {5, "numa_misplaced"}, {6, "contig_range"}, {7, "longterm_pin"}, {8, "demotion"}, {9, "damon"})\n',
    ),
    "sys_enter": (
        "raw_syscalls",
        443,
        "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n"
        "\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n"
        "\n"
        'print fmt: "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0], REC->args[1], REC->args[2], REC->args[3], REC->args[4], REC->args[5]\n',
    ),
    "sys_exit": (
        "raw_syscalls",
        442,
        "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n"
        "\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n"
        "\n"
        'print fmt: "NR %ld = %ld", REC->id, REC->ret\n',
    ),
    "sched_migrate_task": (
        "sched",
        371,
        "\tfield:__data_loc char[] comm;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:16;\tsize:4;\tsigned:1;\n"
        "\tfield:int orig_cpu;\toffset:20;\tsize:4;\tsigned:1;\n"
        "\tfield:int dest_cpu;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d orig_cpu=%d dest_cpu=%d", __get_str(comm), REC->pid, REC->prio, REC->orig_cpu, REC->dest_cpu\n',
    ),
    "sched_move_numa": (
        "sched",
        360,
        "\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:pid_t tgid;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\tfield:pid_t ngid;\toffset:16;\tsize:4;\tsigned:1;\n"
        "\tfield:int src_cpu;\toffset:20;\tsize:4;\tsigned:1;\n"
        "\tfield:int src_nid;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\tfield:int dst_cpu;\toffset:28;\tsize:4;\tsigned:1;\n"
        "\tfield:int dst_nid;\toffset:32;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "pid=%d tgid=%d ngid=%d src_cpu=%d src_nid=%d dst_cpu=%d dst_nid=%d", REC->pid, REC->tgid, REC->ngid, REC->src_cpu, REC->src_nid, REC->dst_cpu, REC->dst_nid\n',
    ),
    "sched_process_exec": (
        "sched",
        365,
        "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid\n',
    ),
    "sched_process_exit": (
        "sched",
        369,
        "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n"
        "\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d group_dead=%s", REC->comm, REC->pid, REC->prio, REC->group_dead ? "true" : "false"\n',
    ),
    "sched_process_fork": (
        "sched",
        366,
        "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n"
        "\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d child_comm=%s child_pid=%d", __get_str(parent_comm), REC->parent_pid, __get_str(child_comm), REC->child_pid\n',
    ),
    "sched_process_free": (
        "sched",
        370,
        "\tfield:__data_loc char[] comm;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:16;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d", __get_str(comm), REC->pid, REC->prio\n',
    ),
    "sched_process_wait": (
        "sched",
        367,
        "\tfield:__data_loc char[] comm;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:16;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d", __get_str(comm), REC->pid, REC->prio\n',
    ),
    "sched_skip_vma_numa": (
        "sched",
        357,
        "\tfield:unsigned long numa_scan_offset;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long vm_start;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:unsigned long vm_end;\toffset:24;\tsize:8;\tsigned:0;\n"
        "\tfield:enum numa_vmaskip_reason reason;\toffset:32;\tsize:4;\tsigned:0;\n"
        "\n"
        'print fmt: "numa_scan_offset=%lX vm_start=%lX vm_end=%lX reason=%s", REC->numa_scan_offset, REC->vm_start, REC->vm_end, __print_symbolic(REC->reason, { 0, "unsuitable" }, { 1, "shared_ro" }, { 2, "inaccessible" }, { 3, "scan_delay" }, { 4, "pid_inactive" }, { 5, "ignore_pid_inactive" }, { 6, "seq_completed" })\n',
    ),
    "sched_stick_numa": (
        "sched",
        359,
        _NUMA_PAIR,
    ),
    "sched_swap_numa": (
        "sched",
        358,
        _NUMA_PAIR,
    ),
    "sched_switch": (
        "sched",
        372,
        "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n"
        "\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n"
        "\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n"
        "\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), "|", { 0x00000001, "S" }, { 0x00000002, "D" }, { 0x00000004, "T" }, { 0x00000008, "t" }, { 0x00000010, "X" }, { 0x00000020, "Z" }, { 0x00000040, "P" }, { 0x00000080, "I" }) : "R", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? "+" : "", REC->next_comm, REC->next_pid, REC->next_prio\n',
    ),
    "sched_wakeup": (
        "sched",
        374,
        "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n"
        "\tfield:int target_cpu;\toffset:32;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, REC->target_cpu\n',
    ),
    "sched_wakeup_new": (
        "sched",
        373,
        "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n"
        "\tfield:int target_cpu;\toffset:32;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, REC->target_cpu\n',
    ),
    "sched_waking": (
        "sched",
        375,
        "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n"
        "\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n"
        "\tfield:int target_cpu;\toffset:32;\tsize:4;\tsigned:1;\n"
        "\n"
        'print fmt: "comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, REC->target_cpu\n',
    ),
    "task_newtask": (
        "task",
        205,
        "\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;\n"
        "\tfield:u64 clone_flags;\toffset:32;\tsize:8;\tsigned:0;\n"
        "\tfield:short oom_score_adj;\toffset:40;\tsize:2;\tsigned:1;\n"
        "\n"
        'print fmt: "pid=%d comm=%s clone_flags=%llx oom_score_adj=%hd", REC->pid, REC->comm, REC->clone_flags, REC->oom_score_adj\n',
    ),
    "task_rename": (
        "task",
        204,
        "\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:char oldcomm[16];\toffset:12;\tsize:16;\tsigned:0;\n"
        "\tfield:char newcomm[16];\toffset:28;\tsize:16;\tsigned:0;\n"
        "\tfield:short oom_score_adj;\toffset:44;\tsize:2;\tsigned:1;\n"
        "\n"
        'print fmt: "pid=%d oldcomm=%s newcomm=%s oom_score_adj=%hd", REC->pid, REC->oldcomm, REC->newcomm, REC->oom_score_adj\n',
    ),
    "tlb_flush": (
        "tlb",
        188,
        "\tfield:int reason;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:unsigned long pages;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\n"
        'print fmt: "pages:%ld reason:%s (%d)", REC->pages, __print_symbolic(REC->reason, { 0, "flush on task switch" }, { 1, "remote shootdown" }, { 2, "local shootdown" }, { 3, "local MM shootdown" }, { 4, "remote IPI send" }, { 5, "remote wrong CPU" }), REC->reason\n',
    ),
}
