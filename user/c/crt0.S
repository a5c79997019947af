/* Program start for C programs (guest-abi §3): the kernel enters _start with rdi = argc,
 * rsi = argv and rsp at a fake return address (8-byte aligned). Align the stack to 16 as
 * the System V ABI expects at a call, run main(argc, argv), then exit with its result. */
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp
    and $-16, %rsp
    call main
    mov %eax, %edi
    call exit
    ud2
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
