/* pause.c: the sandbox ("pause") process of the lab node's pods
 * (lab/node.ts). containerd starts one per pod to hold its namespaces; no
 * registry is reachable here, so scripts/build-pause-image builds this and
 * packages it as an image. It sleeps until SIGTERM or SIGINT and exits 0, and
 * reaps zombies, as PID 1 of a pod's PID namespace must. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { (void)sig; _exit(0); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0)
    return 1;
  for (;;) pause();
}
