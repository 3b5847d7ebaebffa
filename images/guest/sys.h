/*
 * The few Linux system calls our freestanding guest programs need (i386, `int $0x80`, no libc), and
 * their entry point: a program defines `int main(int argc, char **argv, char **envp)`.
 * Built by images/build.mjs with the host's gcc -m32 -nostdlib: no i386 libc needed on the build host.
 */
#ifndef LINUX_VM_SYS_H
#define LINUX_VM_SYS_H

#define SYS_exit 1
#define SYS_fork 2
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_close 6
#define SYS_execve 11
#define SYS_chdir 12
#define SYS_mknod 14
#define SYS_mount 21
#define SYS_access 33
#define SYS_nice 34
#define SYS_mkdir 39
#define SYS_ioctl 54
#define SYS_chroot 61
#define SYS_dup2 63
#define SYS_setsid 66
#define SYS_sethostname 74
#define SYS_settimeofday 79
#define SYS_wait4 114
#define SYS_uname 122
#define SYS_nanosleep 162
#define SYS_stat64 195
#define SYS_getdents64 220
#define SYS_openat 295
#define SYS_fstatat64 300
#define SYS_unlinkat 301

#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_NOCTTY 0400
#define O_DIRECTORY 0200000
#define O_CLOEXEC 02000000
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
#define X_OK 1
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFIFO 0010000
#define MS_NOSUID 2
#define MS_NODEV 4
#define MS_NOEXEC 8
#define MS_MOVE 8192
#define TCGETS 0x5401
#define TCSETS 0x5402
#define TIOCSCTTY 0x540E
#define ECHO 0000010

static inline long sys5(long number, long a, long b, long c, long d, long e) {
  long result;
  __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e) : "memory");
  return result;
}
#define sys0(n) sys5((n), 0, 0, 0, 0, 0)
#define sys1(n, a) sys5((n), (long)(a), 0, 0, 0, 0)
#define sys2(n, a, b) sys5((n), (long)(a), (long)(b), 0, 0, 0)
#define sys3(n, a, b, c) sys5((n), (long)(a), (long)(b), (long)(c), 0, 0)
#define sys4(n, a, b, c, d) sys5((n), (long)(a), (long)(b), (long)(c), (long)(d), 0)

/* The kernel's i386 `struct stat64` (96 bytes); only these fields are read. */
struct stat64 {
  unsigned long long st_dev;
  unsigned char pad0[4];
  unsigned long ino32;
  unsigned int st_mode;
  unsigned char rest[76];
};

struct timespec32 {
  long sec;
  long nsec;
};

static inline long str_len(const char *s) {
  long n = 0;
  while (s[n]) n++;
  return n;
}

static inline int str_eq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* Writes a message to fd 2 (the kernel console for early userspace). */
static inline void say(const char *a, const char *b) {
  sys3(SYS_write, 2, a, str_len(a));
  if (b) sys3(SYS_write, 2, b, str_len(b));
  sys3(SYS_write, 2, "\n", 1);
}

static inline void sleep_ms(long ms) {
  struct timespec32 t = {ms / 1000, (ms % 1000) * 1000000};
  sys2(SYS_nanosleep, &t, 0);
}

static inline int exists(const char *path) {
  struct stat64 st;
  return sys2(SYS_stat64, path, &st) == 0;
}

static inline int mount_fs(const char *source, const char *target, const char *type, unsigned long flags, const char *data) {
  return sys5(SYS_mount, (long)source, (long)target, (long)type, (long)flags, (long)data) == 0;
}

/* Waits up to `tenths` × 0.1 s for `path` to appear (a device the kernel is still probing). */
static inline int wait_for(const char *path, int tenths) {
  for (int i = 0; !exists(path) && i < tenths; i++) sleep_ms(100);
  return exists(path);
}

int main(int argc, char **argv, char **envp);

void start_c(long *stack) {
  int argc = (int)stack[0];
  char **argv = (char **)(stack + 1);
  sys1(SYS_exit, main(argc, argv, argv + argc + 1));
}

/* The kernel enters with argc at the stack pointer, then argv[], NULL, envp[]. */
__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %esp, %eax\n\tand $-16, %esp\n\tsub $12, %esp\n\tpush %eax\n\tcall start_c\n\thlt\n");

#endif
