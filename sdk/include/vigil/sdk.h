/* vigil/sdk.h — emit results and checkpoints from a simulation to Vigil (API v1).
 *
 * Inside a job started under the Vigil SPANK plugin, the plugin gives each task
 * VIGIL_ENDPOINT, VIGIL_JOB_ID and (optionally) VIGIL_MUNGE_SOCKET. The SDK
 * authenticates to vigild as the job's user with its own MUNGE credential (ADR
 * 0005) and sends from a background thread:
 *   - calls never block on the network and never abort the simulation;
 *   - memory is bounded (VIGIL_SDK_QUEUE events, default 100000); beyond that
 *     values are dropped and counted (vigil_sdk_dropped);
 *   - outside a Vigil job every call is a cheap no-op returning 0.
 * Thread-safe. Link with -lvigil.
 */
#ifndef VIGIL_SDK_H
#define VIGIL_SDK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_SDK_API_VERSION 1

/* 0 on success or when not inside a Vigil job; negative on a bad argument. */
int vigil_sdk_init(void);
/* A named scalar at a simulation step (time series). `units` may be NULL. */
int vigil_emit_scalar(const char* name, double value, int64_t step, double sim_time, const char* units);
/* A checkpoint the simulation has written and closed. */
int vigil_report_checkpoint(const char* path, int64_t step, double sim_time);
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
