/* netbpf_obj.c - the eBPF VLAN programs' object file (netbpf.bpf.c,
 * built by the Makefile with clang -target bpf), inside the binary:
 * netbpf.c opens it from memory, so cvirt stays one file. */

#ifndef NETBPF_OBJ
#error "NETBPF_OBJ (the path of netbpf.bpf.o) is set by the Makefile"
#endif

__asm__(
    "	.section .rodata\n"
    "	.balign 8\n"
    "	.globl netbpf_obj\n"
    "	.type netbpf_obj, @object\n"
    "netbpf_obj:\n"
    "	.incbin \"" NETBPF_OBJ "\"\n"
    "	.size netbpf_obj, . - netbpf_obj\n"
    "	.globl netbpf_obj_end\n"
    "netbpf_obj_end:\n"
    "	.previous\n");
