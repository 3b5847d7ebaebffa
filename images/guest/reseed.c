/*
 * linux-vm-reseed HEX — mixes the bytes given in hex into the kernel's entropy pool, credits them,
 * and makes the kernel's CRNG reseed now. Guests resumed from one boot snapshot start with
 * identical RNG state; the host's `go` line carries fresh entropy, and this puts it to use at once
 * (writing to /dev/urandom alone would only take effect at the CRNG's next periodic reseed).
 *
 * Freestanding i386: no libc, raw `int $0x80` system calls (built by images/build.mjs).
 */
#define SYS_exit 1
#define SYS_open 5
#define SYS_ioctl 54
#define O_WRONLY 1
#define RNDADDENTROPY 0x40085203 /* _IOW('R', 0x03, int[2]) */
#define RNDRESEEDCRNG 0x5207     /* _IO('R', 0x07) */

static long syscall3(long number, long a, long b, long c) {
  long result;
  __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(a), "c"(b), "d"(c) : "memory");
  return result;
}

static struct {
  int entropy_bits;
  int size;
  unsigned char bytes[256];
} pool;

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int reseed(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *hex = argv[1];
  while (pool.size < (int)sizeof pool.bytes && hex[0] && hex[1]) {
    int high = hex_digit(hex[0]), low = hex_digit(hex[1]);
    if (high < 0 || low < 0) return 2;
    pool.bytes[pool.size++] = (unsigned char)(high << 4 | low);
    hex += 2;
  }
  if (pool.size < 16) return 2; /* too little to be worth crediting */
  pool.entropy_bits = pool.size * 8;
  long fd = syscall3(SYS_open, (long)"/dev/urandom", O_WRONLY, 0);
  if (fd < 0) return 1;
  if (syscall3(SYS_ioctl, fd, RNDADDENTROPY, (long)&pool) < 0) return 1;
  if (syscall3(SYS_ioctl, fd, RNDRESEEDCRNG, 0) < 0) return 1;
  return 0;
}

void start_c(long *stack) {
  int status = reseed((int)stack[0], (char **)(stack + 1));
  syscall3(SYS_exit, status, 0, 0);
}

/* The kernel enters with argc at the stack pointer, then argv[]. */
__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %esp, %eax\n\tand $-16, %esp\n\tsub $12, %esp\n\tpush %eax\n\tcall start_c\n\thlt\n");
