// Runs one envci command; the other envci* steps call this. No logic beyond passing inputs:
// every value goes to resources/envci/run.sh as an environment variable (withEnv), never into the
// script text, and the kubeconfig comes from a Jenkins credential (withCredentials), never echoed.
//
// Options (all optional):
//   config                   envci.yaml path, relative to workdir (default envci.yaml)
//   env                      environment name, overriding the one derived from the branch or PR
//   workdir                  directory to run envci in (default: the workspace)
//   kubeconfigCredentialsId  id of a "Secret file" credential holding a kubeconfig
//   envci                    pip requirement to install (default: $ENVCI_INSTALL, else envci==<this library's release>,
//                            which the envci image already holds), or 'installed'
//   venv                     virtualenv path to install envci into
//   args                     extra arguments for the command
// Returns envci's exit code; throws (failing the build) when it is not 0, unless returnStatus: true.
def call(String command, Map opts = [:]) {
    List vars = [
        "ENVCI_COMMAND=${command}",
        "ENVCI_CONFIG=${opts.config ?: 'envci.yaml'}",
        "ENVCI_WORKDIR=${opts.workdir ?: '.'}",
        "ENVCI_ARGS=${opts.args ?: ''}",
    ]
    if (opts.env) {
        vars << "ENVCI_ENV=${opts.env}"
    }
    if (opts.envci) {
        vars << "ENVCI_INSTALL=${opts.envci}"
    }
    if (opts.venv) {
        vars << "ENVCI_VENV=${opts.venv}"
    }
    String script = libraryResource('envci/run.sh')
    Closure run = {
        withEnv(vars) {
            sh(script: script, returnStatus: true, label: "envci ${command}")
        }
    }
    int status = opts.kubeconfigCredentialsId
        ? withCredentials([file(credentialsId: opts.kubeconfigCredentialsId, variable: 'KUBECONFIG')]) { run() }
        : run()
    if (status != 0 && !opts.returnStatus) {
        error("envci ${command} failed with exit code ${status} (1 tests failed, 2 bad input, 3 not ready, 4 infrastructure)")
    }
    return status
}
