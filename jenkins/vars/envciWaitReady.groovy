// envciWaitReady(options): wait until every workload is ready (`envci wait-ready`); on failure the
// log names the workload, its events and last log lines. Options: see envciCommand.
def call(Map opts = [:]) {
    return envciCommand('wait-ready', opts)
}
