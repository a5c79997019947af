/* System call stubs, one per call of guest-abi §4. The C calling convention passes
 * arguments in rdi, rsi, rdx, rcx, r8, r9; the kernel takes the fourth in r10 because the
 * `syscall` instruction overwrites rcx (and r11), which are caller-saved in C anyway.
 * The result comes back in rax. */
    .text

.macro STUB name, nr
    .globl \name
    .type \name, @function
\name:
    mov $\nr, %eax
    mov %rcx, %r10
    syscall
    ret
    .size \name, . - \name
.endm

    STUB halt, 0
    STUB exit, 1
    STUB fork, 2
    STUB exec, 3
    STUB wait, 4
    STUB create, 5
    STUB remove, 6
    STUB open, 7
    STUB filesize, 8
    STUB read, 9
    STUB write, 10
    STUB seek, 11
    STUB tell, 12
    STUB close, 13
    STUB mmap, 14
    STUB munmap, 15
    STUB chdir, 16
    STUB mkdir, 17
    STUB readdir, 18
    STUB isdir, 19
    STUB inumber, 20
    STUB symlink, 21
    STUB dup2, 22
    STUB mount, 23
    STUB umount, 24

/* long syscall3(long nr, long a, long b, long c): any call with raw arguments, for tests
 * that pass bad pointers or numbers on purpose. */
    .globl syscall3
    .type syscall3, @function
syscall3:
    mov %rdi, %rax
    mov %rsi, %rdi
    mov %rdx, %rsi
    mov %rcx, %rdx
    syscall
    ret
    .size syscall3, . - syscall3

    .section .note.GNU-stack, "", @progbits
