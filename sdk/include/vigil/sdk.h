/* vigil/sdk.h — emit results and checkpoints from a simulation to Vigil (API v3).
 *
 * Inside a job started under the Vigil SPANK plugin, the plugin gives each task
 * VIGIL_ENDPOINT, VIGIL_JOB_ID and (optionally) VIGIL_MUNGE_SOCKET. The SDK
 * authenticates to vigild as the job's user with its own MUNGE credential (ADR
 * 0005) and sends from a background thread:
 *   - calls never block on the network and never abort the simulation;
 *   - memory is bounded (VIGIL_SDK_QUEUE events, default 100000, and
 *     VIGIL_SDK_QUEUE_MB of array data, default 64); beyond that values are
 *     dropped and counted (vigil_sdk_dropped);
 *   - outside a Vigil job every call is a cheap no-op returning 0.
 * Thread-safe. Link with -lvigil. C++ users: vigil/sdk.hpp; Python: `import vigil`.
 *
 * Names: metric and stage names are 1..64 characters from [A-Za-z0-9_.-]; they
 * become HDF5 paths /stages/<stage>/<name> in the job's result file (ADR 0010).
 * Versions: v1 had init/emit_scalar/report_checkpoint/finalize/active/dropped;
 * v2 adds stages, n-dimensional arrays and vigil_sdk_api_version; v3 adds the
 * checkpoint request (vigil_checkpoint_signal, vigil_install_checkpoint_handler,
 * vigil_should_checkpoint), vigil_report_checkpoint_failed and vigil_report_output.
 * Versions only add
 * functions: v1 and v2 programs run unchanged against a v3 library.
 */
#ifndef VIGIL_SDK_H
#define VIGIL_SDK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_SDK_API_VERSION 3
#define VIGIL_MAX_NAME 64
#define VIGIL_MAX_DIMS 4
#define VIGIL_MAX_ARRAY_ELEMENTS 65536 /* per call; 256 x 256 doubles */

/* Error codes (negative). */
#define VIGIL_EINVAL (-1)   /* bad name, dims or arguments: nothing was queued */
#define VIGIL_EINTERNAL (-2)

/* 0 on success or when not inside a Vigil job; negative on a bad argument. */
int vigil_sdk_init(void);
/* The API version of the loaded library (VIGIL_SDK_API_VERSION it was built with). */
int vigil_sdk_api_version(void);
/* The stage later values belong to (process-wide; default "main"), e.g.
 * "equilibration", "production". VIGIL_EINVAL for a bad name. */
int vigil_set_stage(const char* stage);
/* A named scalar at a simulation step (time series). `units` may be NULL. */
int vigil_emit_scalar(const char* name, double value, int64_t step, double sim_time, const char* units);
/* A named n-dimensional array (a snapshot, e.g. a 2-D field), C order.
 * 1 <= ndims <= VIGIL_MAX_DIMS; every dims[i] >= 1; the product is at most
 * VIGIL_MAX_ARRAY_ELEMENTS. The data is copied before the call returns. A
 * metric's shape is fixed by its first value; later values of another shape
 * are refused by vigild (counted in vigil_sdk_dropped). */
int vigil_emit_array(const char* name, const double* data, int ndims, const int64_t* dims, int64_t step,
                     double sim_time, const char* units);
/* A checkpoint the simulation has written and closed. */
int vigil_report_checkpoint(const char* path, int64_t step, double sim_time);
/* (v3) A checkpoint the simulation tried to write at `step` and could not (e.g.
 * ENOSPC); error_number is the errno of the failed call (0: cause unknown).
 * Report it after removing the partial file, then carry on computing. Sent as a
 * checkpoint event marked failed, with the errno and its strerror text.
 * VIGIL_EINVAL for a NULL/empty path or one over 4096 bytes, or error_number < 0. */
int vigil_report_checkpoint_failed(const char* path, int64_t step, int error_number);
/* (v3) A final output the simulation has written and closed (an absolute path to
 * a file of the job's user). vigild records its SHA-256 under `name` (NULL or
 * "": the path) once: a retried run that reports the same name with the same
 * content adds no second record, and a copy under another path is removed.
 * VIGIL_EINVAL for a NULL/empty path or one over 4096 bytes, or a name over 4096. */
int vigil_report_output(const char* path, const char* name, int64_t step);

/* (v3) Checkpoint requests. Vigil asks a job to checkpoint by sending its tasks
 * a signal (--vigil-checkpoint-signal, default SIGUSR1; the plugin passes it as
 * VIGIL_CHECKPOINT_SIGNAL). The usual pattern, once per step:
 *
 *     vigil_install_checkpoint_handler();            // once, early in main()
 *     for (step = 1; step <= n; ++step) {
 *       advance();
 *       if (vigil_should_checkpoint()) write_checkpoint(step);
 *     }
 *
 * These work outside a Vigil job too (the signal can be sent by hand, e.g.
 * `scancel --signal=USR1 JOBID`), and do not start the SDK.
 *
 * The signal number: VIGIL_CHECKPOINT_SIGNAL when it is a decimal number of a
 * signal a process can catch, else SIGUSR1. */
int vigil_checkpoint_signal(void);
/* Installs (sigaction, SA_RESTART) a handler for vigil_checkpoint_signal() that
 * only sets a flag: it replaces any handler of that signal. 0, or VIGIL_EINVAL
 * if the system refuses that signal. Calling it again is harmless and keeps a
 * pending request. */
int vigil_install_checkpoint_handler(void);
/* 1 once per request since the last call (test-and-clear; several signals
 * before a call count as one), else 0. A single atomic exchange: call it every step. */
int vigil_should_checkpoint(void);
/* Flush what is queued, waiting at most timeout_ms; then stop the thread. */
void vigil_sdk_finalize(int timeout_ms);
/* 1 when running inside a Vigil job (events are being sent), else 0. */
int vigil_sdk_active(void);
/* Values dropped because the queue was full or vigild refused them. */
uint64_t vigil_sdk_dropped(void);

#ifdef __cplusplus
}
#endif
#endif /* VIGIL_SDK_H */
