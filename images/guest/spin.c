/* /usr/bin/linux-vm-spin: a fixed amount of integer work, the "tight static C loop" of bench/cpu.mjs.
 * The same i386 binary runs in v86, in QEMU and natively on the host, so their times compare directly.
 * Freestanding: no libc, raw int 0x80 syscalls. images/build.mjs compiles it with
 *   gcc -m32 -static -nostdlib -ffreestanding -O2 -fno-pie -no-pie -fno-stack-protector -s
 * (no gcc-multilib needed).
 *
 *   linux-vm-spin [N]   N million iterations of xorshift32 + LCG (default 200); prints "spin <N>M <checksum>"
 *   linux-vm-spin now   prints "spin-now <seconds>.<nanoseconds>" of CLOCK_MONOTONIC (busybox date has no %N)
 */
typedef unsigned int u32;

static long sys3(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
  return ret;
}

#define SYS_exit 1
#define SYS_write 4
#define SYS_clock_gettime 265
#define CLOCK_MONOTONIC 1

static int put_str(char *p, const char *s) {
  int n = 0;
  while (s[n]) { p[n] = s[n]; n++; }
  return n;
}

static int put_dec(char *p, u32 v, int width) { /* width > 0: zero-padded to width digits */
  char t[10];
  int n = 0, i;
  do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n < width) t[n++] = '0';
  for (i = 0; i < n; i++) p[i] = t[n - 1 - i];
  return n;
}

static u32 parse_dec(const char *s) {
  u32 v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (u32)(*s++ - '0');
  return v;
}

__attribute__((noinline)) static u32 work(u32 iterations) {
  u32 x = 2463534242u, lcg = 12345u, acc = 0;
  for (u32 i = 0; i < iterations; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;  /* xorshift32 */
    lcg = lcg * 1664525u + 1013904223u;        /* LCG */
    acc += (x ^ lcg) + (acc >> 3);
  }
  return acc;
}

__attribute__((used)) static void spin_main(long argc, char **argv) {
  char buf[64];
  int n = 0;
  const char *arg = argc > 1 ? argv[1] : "";
  if (arg[0] == 'n' && arg[1] == 'o' && arg[2] == 'w' && !arg[3]) {
    struct { long sec, nsec; } ts = { 0, 0 };
    sys3(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0);
    n += put_str(buf + n, "spin-now ");
    n += put_dec(buf + n, (u32)ts.sec, 0);
    buf[n++] = '.';
    n += put_dec(buf + n, (u32)ts.nsec, 9);
  } else {
    u32 millions = parse_dec(arg);
    if (!millions) millions = 200;
    u32 sum = work(millions * 1000000u);
    n += put_str(buf + n, "spin ");
    n += put_dec(buf + n, millions, 0);
    n += put_str(buf + n, "M ");
    for (int i = 7; i >= 0; i--) buf[n++] = "0123456789abcdef"[(sum >> (i * 4)) & 15];
  }
  buf[n++] = '\n';
  sys3(SYS_write, 1, (long)buf, n);
  sys3(SYS_exit, 0, 0, 0);
}

/* The kernel starts us with argc at (%esp) and argv right above it. */
__asm__(".globl _start\n_start:\n"
        "  xorl %ebp, %ebp\n"
        "  movl (%esp), %eax\n"
        "  leal 4(%esp), %ecx\n"
        "  andl $-16, %esp\n"
        "  subl $8, %esp\n"
        "  pushl %ecx\n"
        "  pushl %eax\n"
        "  call spin_main\n"
        "  hlt\n");
