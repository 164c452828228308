// A stand-in for Jenkins that runs a Jenkinsfile and the shared library's vars/*.groovy steps.
//
// Steps are closures in one Binding: `sh` really runs (in the workspace, with env, withEnv and
// credential variables), the rest record what they were given. Enough of the declarative syntax
// (pipeline, agent, options, stages, stage, steps, script) is bound to run examples/jenkins/Jenkinsfile.
//
// usage: groovy harness.groovy LIBRARY_DIR JENKINSFILE WORKSPACE RECORD_JSON
// ENVCI_HARNESS_CREDENTIALS: JSON object of credentials id -> secret file path.
// Exit status: 0 when the build succeeded, 1 when it failed, 2 when it is unstable; RECORD_JSON holds
// the calls in order.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class AbortException extends RuntimeException {
    AbortException(String message) { super(message) }
}

class Env extends GroovyObjectSupport {
    private Map<String, String> vars = new LinkedHashMap<>(System.getenv())
    Object getProperty(String name) { vars[name] }
    void setProperty(String name, Object value) { vars[name] = value == null ? null : value.toString() }
    Object getAt(String name) { vars[name] }
    Map<String, String> all() { vars }
}

String libDir = args[0]
File jenkinsfile = new File(args[1])
File workspace = new File(args[2])
File record = new File(args[3])
Map credentials = new JsonSlurper().parseText(System.getenv('ENVCI_HARNESS_CREDENTIALS') ?: '{}') as Map

List<Map> calls = []
List<Map<String, String>> envStack = []
Env env = new Env()
env.all()['WORKSPACE'] = workspace.absolutePath
Binding binding = new Binding()
binding.setVariable('env', env)
binding.setVariable('any', 'any')
binding.setVariable('_', null)

Closure<Map<String, String>> processEnv = {
    Map<String, String> all = new LinkedHashMap<>(env.all())
    envStack.each { all.putAll(it) }
    all.findAll { k, v -> v != null }
}

binding.setVariable('sh', { arg ->
    Map a = arg instanceof Map ? arg : [script: arg]
    Map<String, String> pe = processEnv()
    ProcessBuilder pb = new ProcessBuilder(['sh', '-c', a.script as String]).directory(workspace).redirectErrorStream(true)
    pb.environment().clear()
    pb.environment().putAll(pe)
    Process p = pb.start()
    StringBuilder out = new StringBuilder()
    p.inputStream.eachLine { line ->
        if (!a.returnStdout) { println "[sh] ${line}" }
        out.append(line).append('\n')
    }
    int rc = p.waitFor()
    calls << [step: 'sh', label: a.label, command: pe['ENVCI_COMMAND'], status: rc, kubeconfig: pe['KUBECONFIG']]
    if (a.returnStatus) { return rc }
    if (rc != 0) { throw new AbortException("script returned exit code ${rc}") }
    return a.returnStdout ? out.toString() : null
})
binding.setVariable('withEnv', { List vars, Closure body ->
    Map<String, String> m = [:]
    vars.each { String kv -> int eq = kv.indexOf('='); m[kv.substring(0, eq)] = kv.substring(eq + 1) }
    envStack.push(m)
    try { return body.call() } finally { envStack.pop() }
})
binding.setVariable('file', { Map m -> [type: 'file'] + m })
binding.setVariable('string', { Map m -> [type: 'string'] + m })
binding.setVariable('withCredentials', { List bindings, Closure body ->
    Map<String, String> m = [:]
    bindings.each { Map b ->
        if (!credentials.containsKey(b.credentialsId)) {
            throw new AbortException("Could not find credentials entry with ID '${b.credentialsId}'")
        }
        m[b.variable as String] = credentials[b.credentialsId] as String
    }
    calls << [step: 'withCredentials', ids: bindings.collect { it.credentialsId }, variables: bindings.collect { it.variable }]
    envStack.push(m)
    try { return body.call() } finally { envStack.pop() }
})
binding.setVariable('echo', { Object message ->
    println "[echo] ${message}"
    calls << [step: 'echo', message: message.toString()]
})
binding.setVariable('error', { String message ->
    calls << [step: 'error', message: message]
    throw new AbortException(message)
})
// The build's result: SUCCESS, UNSTABLE (the `unstable` step; the build goes on) or FAILURE.
String result = 'SUCCESS'
AbortException failure = null
binding.setVariable('junit', { arg ->
    Map a = arg instanceof Map ? arg : [testResults: arg]
    calls << [step: 'junit', testResults: a.testResults, allowEmptyResults: a.allowEmptyResults,
              exists: new File(workspace, a.testResults as String).exists()]
})
binding.setVariable('writeFile', { Map a -> new File(workspace, a.file as String).text = a.text; calls << [step: 'writeFile', file: a.file] })
binding.setVariable('readFile', { arg ->
    String path = arg instanceof Map ? arg.file : arg
    calls << [step: 'readFile', file: path]
    new File(workspace, path).text
})
binding.setVariable('fileExists', { String path -> new File(workspace, path).exists() })
binding.setVariable('libraryResource', { String path ->
    calls << [step: 'libraryResource', path: path]
    new File(libDir, "resources/${path}").text
})
// Declarative pipeline: run the sections in order; options only configure Jenkins itself. A failing
// stage skips the stages after it, then `post` runs: `always`, and `success`, `unstable` or `failure`
// by the result so far; the failure ends the build after that.
binding.setVariable('pipeline', { Closure c ->
    c.call()
    if (failure != null) { throw failure }
})
binding.setVariable('agent', { Object a -> })
binding.setVariable('options', { Closure c -> })
binding.setVariable('stages', { Closure c ->
    try { c.call() } catch (AbortException e) { failure = e; result = 'FAILURE' }
})
binding.setVariable('post', { Closure c -> calls << [step: 'post']; c.call() })
binding.setVariable('always', { Closure c -> c.call() })
binding.setVariable('success', { Closure c -> if (result == 'SUCCESS') { c.call() } })
binding.setVariable('failure', { Closure c -> if (result == 'FAILURE') { c.call() } })
// `unstable` is both a step (a message: the build goes on as UNSTABLE) and a post condition (a block).
binding.setVariable('unstable', { Object arg ->
    if (arg instanceof Closure) {
        if (result == 'UNSTABLE') { arg.call() }
        return
    }
    calls << [step: 'unstable', message: arg.toString()]
    println "[unstable] ${arg}"
    if (result == 'SUCCESS') { result = 'UNSTABLE' }
})
binding.setVariable('stage', { String name, Closure c -> calls << [step: 'stage', name: name]; c.call() })
binding.setVariable('steps', { Closure c -> c.call() })
binding.setVariable('script', { Closure c -> c.call() })

GroovyShell shell = new GroovyShell(binding)
new File(libDir, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { File f ->
    Script step = shell.parse(f)
    String name = f.name - '.groovy'
    binding.setVariable(name, { Object[] a ->
        calls << [step: name]
        step.invokeMethod('call', a)
    })
}

String source = jenkinsfile.readLines().findAll { !it.trim().startsWith('@Library') }.join('\n')
String error = null
try {
    shell.evaluate(source, 'Jenkinsfile')
} catch (AbortException e) {
    result = 'FAILURE'
    error = e.message
}
record.text = JsonOutput.prettyPrint(JsonOutput.toJson([result: result, error: error, calls: calls]))
println "Finished: ${result}"
System.exit([SUCCESS: 0, FAILURE: 1, UNSTABLE: 2][result])
