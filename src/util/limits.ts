/**
 * Limits shared by the CLI and the library, so both accept and refuse the same values.
 * MAX_THREADS: the native statistics runner starts at most 256 worker threads (stats_runner.cc);
 * a larger request would silently run with 256, so it is refused instead.
 */
export const MAX_THREADS = 256;
