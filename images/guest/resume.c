/*
 * linux-vm-resume [--pause] [ROOT-DEVICE] — the guest's pause point and what a resumed guest does first.
 * Run by the initramfs /init (images/guest/initramfs-init; see images/README.md, "Boot snapshots").
 *
 * --pause: prints the pause mark on /dev/hvc0 and waits for the host's `go <unix-seconds> <hex-entropy>`
 *   line (boot snapshots are saved while it waits), then sets the clock from it and reseeds the kernel RNG
 *   with its entropy (guests resumed from one snapshot must not share a random stream).
 * ROOT-DEVICE: then goes on as PID 1: drops the device's cached blocks (the disk driver read the disk while
 *   probing it, and the disk may have changed since the snapshot), mounts the root read-write, moves /dev,
 *   /proc and /sys into it, mounts devpts and the tmpfs directories and execs the root's init (like
 *   switch_root; a child frees the initramfs later). If the root cannot be mounted it runs /init again with
 *   LINUX_VM_ROOT_FAILED=1 (the initramfs shell).
 *
 * One small static program instead of a dozen busybox commands: after a resume v86's JIT is cold and every
 * fork + exec costs tens of milliseconds (measured: ~0.55 s of the debian image's 1.4 s to its first prompt).
 */
#include "sys.h"

#define WAIT_MARK "\033]7701;wait\007"
#define RNDADDENTROPY 0x40085203 /* _IOW('R', 0x03, int[2]) */
#define RNDRESEEDCRNG 0x5207     /* _IO('R', 0x07) */
#define BLKFLSBUF 0x1261         /* _IO(0x12, 97) */

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

/* Mixes the bytes given in hex into the kernel's entropy pool, credits them and reseeds the CRNG now
 * (writing to /dev/urandom alone would only take effect at the CRNG's next periodic reseed). */
static int reseed(const char *hex) {
  pool.size = 0;
  while (pool.size < (int)sizeof pool.bytes && hex[0] && hex[1]) {
    int high = hex_digit(hex[0]), low = hex_digit(hex[1]);
    if (high < 0 || low < 0) break;
    pool.bytes[pool.size++] = (unsigned char)(high << 4 | low);
    hex += 2;
  }
  if (pool.size < 16) return -1; /* too little to be worth crediting */
  pool.entropy_bits = pool.size * 8;
  long fd = sys2(SYS_open, "/dev/urandom", O_WRONLY);
  if (fd < 0) return -1;
  long ok = sys3(SYS_ioctl, fd, RNDADDENTROPY, &pool) >= 0 && sys2(SYS_ioctl, fd, RNDRESEEDCRNG) >= 0;
  sys1(SYS_close, fd);
  return ok ? 0 : -1;
}

/* Drops the block device's page cache: blocks read before the pause point may be stale after a resume.
 * (Nothing else of the disk is cached: no filesystem on it was mounted.) Far cheaper than drop_caches. */
static void forget_cached_blocks(const char *device) {
  long fd = sys2(SYS_open, device, O_RDONLY);
  if (fd < 0 || sys3(SYS_ioctl, fd, BLKFLSBUF, 0) < 0) say("linux-vm-resume: cannot drop the cached blocks of ", device);
  if (fd >= 0) sys1(SYS_close, fd);
}

static char line[1024];

/* The pause point: mark, then one line from the host (with echo off, so it never shows in the terminal). */
static void pause_for_host(void) {
  long console = sys2(SYS_open, "/dev/hvc0", O_RDWR | O_NOCTTY);
  if (console < 0) return say("linux-vm-resume: cannot open /dev/hvc0", 0);
  unsigned int termios[16];
  int have_termios = sys3(SYS_ioctl, console, TCGETS, termios) == 0;
  if (have_termios) {
    unsigned int echo_off[16];
    for (int i = 0; i < 16; i++) echo_off[i] = termios[i];
    echo_off[3] &= ~ECHO; /* c_lflag */
    sys3(SYS_ioctl, console, TCSETS, echo_off);
  }
  sys3(SYS_write, console, WAIT_MARK, sizeof WAIT_MARK - 1);
  long length = 0;
  while (length < (long)sizeof line - 1) {
    long n = sys3(SYS_read, console, line + length, sizeof line - 1 - length);
    if (n <= 0) break;
    length += n;
    if (line[length - 1] == '\n') break;
  }
  line[length] = 0;
  if (have_termios) sys3(SYS_ioctl, console, TCSETS, termios);
  sys1(SYS_close, console);

  /* go <unix-seconds> <hex-entropy> */
  if (!(line[0] == 'g' && line[1] == 'o' && line[2] == ' ')) return say("linux-vm-resume: unexpected answer from the host: ", line);
  const char *p = line + 3;
  long seconds = 0;
  while (*p >= '0' && *p <= '9') seconds = seconds * 10 + (*p++ - '0');
  long timeval[2] = {seconds, 0};
  if (sys2(SYS_settimeofday, timeval, 0) < 0) say("linux-vm-resume: cannot set the clock", 0);
  while (*p == ' ') p++;
  if (reseed(p) < 0) say("linux-vm-resume: RNG reseed failed", 0);
}

static struct stat64 root_stat;

/* Removes everything in the directory `dir` (an open fd) that lives on the initramfs, like switch_root:
 * its files would otherwise keep their RAM for as long as the guest runs. */
static void empty_directory(int dir) {
  char buffer[2048]; /* one per level: the recursion must not overwrite its caller's entries */
  for (;;) {
    long n = sys3(SYS_getdents64, dir, buffer, sizeof buffer);
    if (n <= 0) return;
    for (long offset = 0; offset < n;) {
      unsigned short record = *(unsigned short *)(buffer + offset + 16);
      unsigned char type = *(unsigned char *)(buffer + offset + 18);
      const char *name = buffer + offset + 19;
      offset += record;
      if (str_eq(name, ".") || str_eq(name, "..")) continue;
      if (type == 4 /* DT_DIR */) {
        struct stat64 st;
        if (sys4(SYS_fstatat64, dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != root_stat.st_dev) continue;
        long child = sys3(SYS_openat, dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (child >= 0) {
          empty_directory((int)child);
          sys1(SYS_close, child);
        }
        sys3(SYS_unlinkat, dir, name, AT_REMOVEDIR);
      } else {
        sys3(SYS_unlinkat, dir, name, 0);
      }
    }
  }
}

static char *env_failed[64];

/* Back to the initramfs shell (its /init), which says why and starts a shell there. */
static int root_failed(char **envp) {
  int n = 0;
  for (; envp[n] && n < 62; n++) env_failed[n] = envp[n];
  env_failed[n++] = "LINUX_VM_ROOT_FAILED=1";
  env_failed[n] = 0;
  char *argv[] = {"/init", 0};
  sys3(SYS_execve, "/init", argv, env_failed);
  say("linux-vm-resume: cannot run /init", 0);
  return 1;
}

static int switch_to_root(const char *device, char **envp) {
  if (!wait_for(device, 300)) {
    say("linux-vm-resume: no root device ", device);
    return root_failed(envp);
  }
  forget_cached_blocks(device);
  sys2(SYS_mkdir, "/newroot", 0755);
  static const char *const types[] = {"ext4", "ext3", "ext2"};
  int mounted = 0;
  for (int i = 0; i < 3 && !mounted; i++) mounted = mount_fs(device, "/newroot", types[i], 0, 0);
  if (!mounted) {
    say("linux-vm-resume: cannot mount the root ", device);
    return root_failed(envp);
  }
  /* The root's API filesystems, mounted here: cheaper than by the root's own (dynamically linked) tools. */
  if (mount_fs("/dev", "/newroot/dev", 0, MS_MOVE, 0)) {
    sys2(SYS_mkdir, "/newroot/dev/pts", 0755);
    sys2(SYS_mkdir, "/newroot/dev/shm", 01777);
    mount_fs("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666");
    mount_fs("tmpfs", "/newroot/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  }
  mount_fs("tmpfs", "/newroot/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755");
  /* The root's init starts its background services once the console's shell opens this (images/guest/init.c). */
  sys3(SYS_mknod, "/newroot/run/linux-vm-console-ready", S_IFIFO | 0600, 0);
  mount_fs("tmpfs", "/newroot/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_fs("/sys", "/newroot/sys", 0, MS_MOVE, 0);
  mount_fs("/proc", "/newroot/proc", 0, MS_MOVE, 0);

  const char *init = "/newroot/sbin/linux-vm-init";
  if (sys2(SYS_access, init, X_OK) != 0) init = "/newroot/sbin/init";
  init += sizeof "/newroot" - 1;

  /* switch_root: make the new root "/" and run its init as PID 1. Freeing the initramfs's files took ~80 ms, so
   * a child does it once the guest is up: it holds the initramfs's top directory open (reached through that
   * fd, not through "/", it stays the initramfs after the move) and PID 1 (the root's init) reaps it. */
  long top = sys2(SYS_open, "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top >= 0 && sys2(SYS_stat64, "/", &root_stat) == 0 && sys0(SYS_fork) == 0) {
    sleep_ms(10000);
    sys1(SYS_nice, 19);
    empty_directory((int)top);
    sys1(SYS_exit, 0);
  }
  if (top >= 0) sys1(SYS_close, top);
  if (sys1(SYS_chdir, "/newroot") < 0 || !mount_fs(".", "/", 0, MS_MOVE, 0) || sys1(SYS_chroot, ".") < 0) {
    say("linux-vm-resume: cannot switch to the root", 0);
    return 1;
  }
  sys1(SYS_chdir, "/");
  char *argv[] = {(char *)init, 0};
  sys3(SYS_execve, init, argv, envp);
  say("linux-vm-resume: cannot run the root's init ", init);
  return 1;
}

int main(int argc, char **argv, char **envp) {
  int i = 1;
  if (i < argc && str_eq(argv[i], "--pause")) {
    pause_for_host();
    i++;
  }
  return i < argc ? switch_to_root(argv[i], envp) : 0;
}
