/*
 * /sbin/linux-vm-init — PID 1 of the debian image (minbase has no init system).
 *
 * Mounts whatever the initramfs did not (images/guest/resume.c mounts it all normally), keeps a root bash on
 * /dev/hvc0 as its controlling tty (restarted a second after it exits), starts the background services
 * (/usr/share/linux-vm/services: network, file agent) once that bash has read /etc/bash.bashrc, and reaps
 * every orphan. A static program, not a shell script: a resumed guest runs everything slowly until v86's JIT
 * has seen it again, and dash + setsid with their shared libraries took ~0.6 s of the way to the first prompt.
 */
#include "sys.h"

#define CONSOLE "/dev/hvc0"
#define CONSOLE_READY "/run/linux-vm-console-ready"
#define SERVICES "/usr/share/linux-vm/services"

static char *shell_env[] = {
  "HOME=/root",
  "TERM=xterm-256color",
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "SHELL=/bin/bash",
  "USER=root",
  "LOGNAME=root",
  0,
};

/* True if `dir` is a mount point (or cannot be examined): it then lives on another device than "/". */
static int is_mounted(const char *dir) {
  struct stat64 root, st;
  if (sys2(SYS_stat64, "/", &root) < 0 || sys2(SYS_stat64, dir, &st) < 0) return 1;
  return st.st_dev != root.st_dev;
}

static void mount_missing(void) {
  if (!is_mounted("/proc")) mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
  if (!is_mounted("/sys")) mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
  if (!is_mounted("/dev")) mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=755");
  sys2(SYS_mkdir, "/dev/pts", 0755);
  sys2(SYS_mkdir, "/dev/shm", 01777);
  if (!is_mounted("/dev/pts")) mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666");
  if (!is_mounted("/dev/shm")) mount_fs("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  if (!is_mounted("/run")) mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755");
  if (!is_mounted("/tmp")) mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

static void set_hostname(void) {
  char uts[6 * 65];
  if (sys1(SYS_uname, uts) == 0 && str_eq(uts + 65, "linux-vm")) return; /* nodename */
  sys2(SYS_sethostname, "linux-vm", 8);
}

/* The services wait in a child until the console's bash writes a line into the FIFO (the last lines of
 * /etc/bash.bashrc): started alongside bash, their programs made a resumed guest's first prompt ~1 s later.
 * The FIFO is held open read-write from before bash starts, so that line cannot be missed. */
static void start_services_when_console_ready(void) {
  struct stat64 st;
  if (sys2(SYS_stat64, CONSOLE_READY, &st) < 0 || (st.st_mode & S_IFMT) != S_IFIFO) {
    sys3(SYS_mknod, CONSOLE_READY, S_IFIFO | 0600, 0);
  }
  long ready = sys2(SYS_open, CONSOLE_READY, O_RDWR);
  long pid = sys0(SYS_fork);
  if (pid == 0) {
    char byte;
    if (ready >= 0) {
      while (sys3(SYS_read, ready, &byte, 1) == 1 && byte != '\n') {}
      sys1(SYS_close, ready);
    }
    long null = sys2(SYS_open, "/dev/null", O_RDWR);
    if (null >= 0) sys2(SYS_dup2, null, 0);
    char *argv[] = {"sh", SERVICES, 0};
    sys3(SYS_execve, "/bin/sh", argv, shell_env);
    say("linux-vm-init: cannot run ", SERVICES);
    sys1(SYS_exit, 127);
  }
  if (ready >= 0) sys1(SYS_close, ready);
}

/* A root bash in a new session with the console as its controlling tty (job control, ^C). */
static long start_console_shell(void) {
  long pid = sys0(SYS_fork);
  if (pid != 0) return pid;
  sys0(SYS_setsid);
  long tty = sys2(SYS_open, CONSOLE, O_RDWR);
  if (tty < 0) {
    say("linux-vm-init: cannot open ", CONSOLE);
    sys1(SYS_exit, 1);
  }
  sys3(SYS_ioctl, tty, TIOCSCTTY, 1);
  for (int fd = 0; fd < 3; fd++) sys2(SYS_dup2, tty, fd);
  if (tty > 2) sys1(SYS_close, tty);
  sys1(SYS_chdir, "/root");
  /* Not a login shell: /etc/profile and ~/.profile would only add programs to start (id, mesg), ~0.5 s after
   * a resume; the environment is set here and the prompt comes from /etc/bash.bashrc. */
  char *argv[] = {"bash", 0};
  sys3(SYS_execve, "/bin/bash", argv, shell_env);
  say("linux-vm-init: cannot run /bin/bash", 0);
  sys1(SYS_exit, 127);
  return -1;
}

int main(int argc, char **argv, char **envp) {
  (void)argc, (void)argv, (void)envp;
  mount_missing();
  set_hostname();
  start_services_when_console_ready();
  if (!wait_for(CONSOLE, 100)) say("linux-vm-init: no " CONSOLE " (v86 option virtio_console: true?)", 0);
  long shell = start_console_shell();
  for (;;) {
    int status;
    long pid = sys4(SYS_wait4, -1, &status, 0, 0);
    if (pid < 0) {
      sleep_ms(1000); /* no children at all (cannot happen while the shell runs) */
    } else if (pid == shell) {
      sleep_ms(1000);
      shell = start_console_shell();
    }
  }
}
