/* decay.c — a small deterministic simulation that reports through the Vigil SDK.
 *
 * Integrates dy/dt = -k y with explicit Euler for N steps and emits y and the
 * relative error against exp(-k t) every step. Outside a Vigil job it runs the
 * same and the SDK calls are no-ops.
 * Usage: vigil_example_decay [steps] [seconds-per-step]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "vigil/sdk.h"

int main(int argc, char** argv) {
  const long steps = argc > 1 ? atol(argv[1]) : 20;
  const double pause = argc > 2 ? atof(argv[2]) : 0.1;
  const double k = 0.5, dt = 0.05;
  double y = 1.0;
  vigil_sdk_init();
  for (long s = 1; s <= steps; ++s) {
    y -= k * y * dt;
    const double t = s * dt, exact = exp(-k * t);
    vigil_emit_scalar("y", y, s, t, "1");
    vigil_emit_scalar("rel_error", fabs(y - exact) / exact, s, t, NULL);
    if (pause > 0) usleep((useconds_t)(pause * 1e6));
  }
  printf("decay: %ld steps, y=%.6f, vigil=%s, dropped=%llu\n", steps, y, vigil_sdk_active() ? "on" : "off",
         (unsigned long long)vigil_sdk_dropped());
  vigil_sdk_finalize(2000);
  return 0;
}
