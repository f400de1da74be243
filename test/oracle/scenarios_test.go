package oracle

import (
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// scenarios are run by TestFactsAgainstTekton and, where their outcome does
// not depend on timers, replayed through Supervisor.Run.
var scenarios = []scenario{
	{
		name: "linear chain",
		pipeline: `
tasks:
- {name: a}
- {name: b, runAfter: [a]}
- {name: c, runAfter: [b]}
`,
		events: []event{ok("a"), ok("b"), ok("c")},
	},
	{
		name: "fan-out and fan-in",
		pipeline: `
tasks:
- {name: a}
- {name: b, runAfter: [a]}
- {name: c, runAfter: [a]}
- {name: d, runAfter: [b, c]}
- {name: e}
`,
		events: []event{ok("a"), ok("c"), ok("e"), ok("b"), ok("d")},
	},
	{
		name: "when in and notin on a result",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: in-true
  when: [{input: $(tasks.a.results.r), operator: in, values: ["yes"]}]
- name: in-false
  when: [{input: $(tasks.a.results.r), operator: in, values: ["no", "maybe"]}]
- name: notin-true
  when: [{input: $(tasks.a.results.r), operator: notin, values: ["no"]}]
- name: notin-false
  when: [{input: $(tasks.a.results.r), operator: notin, values: ["yes"]}]
- {name: after-skipped, runAfter: [in-false]}
`,
		events: []event{ok("a", str("r", "yes")), ok("in-true"), ok("notin-true"), ok("after-skipped")},
	},
	{
		name: "when on static input, before any task ran",
		pipeline: `
tasks:
- name: a
  when: [{input: "push", operator: in, values: ["merge"]}]
- {name: b, runAfter: [a]}
- name: c
  when: [{input: "merge", operator: in, values: ["merge"]}]
`,
		events: []event{ok("b"), ok("c")},
	},
	{
		// docs/pipelines.md "Guarding a Task only".
		name: "guarding a task only",
		pipeline: `
tasks:
- name: tests
- name: manual-approval
  runAfter: [tests]
  when: [{input: "push", operator: in, values: ["merge"]}]
  taskSpec: {results: [{name: approver}]}
- {name: build-image, runAfter: [manual-approval]}
- {name: deploy-image, runAfter: [build-image]}
- name: slack-msg
  params: [{name: approver, value: $(tasks.manual-approval.results.approver)}]
- {name: after-slack, runAfter: [slack-msg]}
`,
		events: []event{ok("tests"), ok("build-image"), ok("deploy-image")},
	},
	{
		// docs/pipelines.md "Guarding a Task and its dependent Tasks".
		name: "guarding a task and its dependents",
		pipeline: `
tasks:
- name: tests
- name: manual-approval
  runAfter: [tests]
  when: [{input: "push", operator: in, values: ["merge"]}]
  taskSpec: {results: [{name: approver}]}
- name: build-image
  runAfter: [manual-approval]
  when: [{input: "push", operator: in, values: ["merge"]}]
- name: deploy-image
  runAfter: [build-image]
  when: [{input: "push", operator: in, values: ["merge"]}]
- name: slack-msg
  params: [{name: approver, value: $(tasks.manual-approval.results.approver)}]
`,
		events: []event{ok("tests")},
	},
	{
		name: "a skipped parent chain",
		pipeline: `
tasks:
- name: a
  when: [{input: "x", operator: notin, values: ["x"]}]
  taskSpec: {results: [{name: r}]}
- name: b
  params: [{name: p, value: $(tasks.a.results.r)}]
- {name: c, runAfter: [b]}
- {name: d, runAfter: [c]}
- {name: e, runAfter: [a]}
- {name: f, runAfter: [d, e]}
`,
		events: []event{ok("e")},
	},
	{
		name: "a failure stops new tasks while parallel ones finish",
		pipeline: `
tasks:
- {name: a}
- {name: b}
- {name: c, runAfter: [a]}
- {name: d, runAfter: [b]}
- {name: e}
`,
		events: []event{ok("e"), fail("a"), ok("b")},
	},
	{
		name: "finally after success reads task status",
		pipeline: `
tasks:
- {name: a}
- name: b
  runAfter: [a]
  when: [{input: "x", operator: in, values: ["y"]}]
finally:
- name: report
  params:
  - {name: a-status, value: $(tasks.a.status)}
  - {name: a-reason, value: $(tasks.a.reason)}
  - {name: b-status, value: $(tasks.b.status)}
  - {name: all, value: "$(tasks.status)"}
- name: on-success
  when: [{input: $(tasks.status), operator: in, values: ["Succeeded", "Completed"]}]
- name: on-failure
  when: [{input: $(tasks.a.status), operator: in, values: ["Failed"]}]
`,
		events: []event{ok("a"), ok("report"), ok("on-success")},
	},
	{
		name: "finally after failure",
		pipeline: `
tasks:
- {name: a}
- {name: b, runAfter: [a]}
- {name: c}
finally:
- name: report
  params:
  - {name: a, value: "$(tasks.a.status)/$(tasks.a.reason)"}
  - {name: b, value: $(tasks.b.status)}
  - {name: c, value: $(tasks.c.status)}
  - {name: all, value: $(tasks.status)}
- name: on-failure
  when: [{input: $(tasks.a.status), operator: in, values: ["Failed"]}]
- name: on-success
  when: [{input: $(tasks.status), operator: in, values: ["Succeeded"]}]
`,
		events: []event{failWith("a", v1.TaskRunReasonTimedOut.String()), ok("c"), ok("report"), fail("on-failure")},
	},
	{
		name: "finally referencing results of a skipped task",
		pipeline: `
tasks:
- name: a
  when: [{input: "x", operator: in, values: ["y"]}]
  taskSpec: {results: [{name: r}]}
- {name: b}
finally:
- name: uses-a
  params: [{name: p, value: $(tasks.a.results.r)}]
- name: plain
`,
		events: []event{ok("b"), ok("plain")},
	},
	{
		name: "finally referencing results of failed tasks",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: b
  taskSpec: {results: [{name: r}]}
finally:
- name: uses-a
  params: [{name: p, value: $(tasks.a.results.r)}]
- name: uses-b
  params: [{name: p, value: $(tasks.b.results.r)}]
- name: when-b
  when: [{input: $(tasks.b.results.r), operator: in, values: ["x"]}]
`,
		events: []event{fail("a", str("r", "partial")), fail("b"), ok("uses-a")},
	},
	{
		name: "string, array and object results into params and when",
		pipeline: `
tasks:
- name: a
  taskSpec:
    results:
    - {name: s}
    - {name: list, type: array}
    - {name: o, type: object, properties: {key: {type: string}, other: {type: string}}}
- name: b
  params:
  - {name: s, value: "pre-$(tasks.a.results.s)-post"}
  - {name: whole, value: "$(tasks.a.results.list[*])"}
  - {name: one, value: "$(tasks.a.results.list[1])"}
  - {name: key, value: "$(tasks.a.results.o.key)"}
  - {name: o, value: "$(tasks.a.results.o[*])"}
  - {name: mixed, value: ["$(tasks.a.results.list[*])", "last"]}
  taskSpec:
    params:
    - {name: s}
    - {name: whole, type: array}
    - {name: one}
    - {name: key}
    - {name: o, type: object, properties: {key: {type: string}, other: {type: string}}}
    - {name: mixed, type: array}
  when:
  - {input: "$(tasks.a.results.o.key)", operator: in, values: ["v"]}
  - {input: "y", operator: in, values: ["$(tasks.a.results.list[*])"]}
- name: c
  when: [{input: "$(tasks.a.results.list[0])", operator: in, values: ["nope"]}]
`,
		events: []event{ok("a", str("s", "S"), arr("list", "x", "y"), obj("o", "key", "v", "other", "w")), ok("b")},
	},
	{
		name: "missing result of a succeeded task fails validation",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: b
  params: [{name: p, value: $(tasks.a.results.r)}]
- {name: c, runAfter: [b]}
- {name: d}
`,
		events: []event{ok("a"), ok("d")},
	},
	{
		name: "missing result of a succeeded task, with finally",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: b
  params: [{name: p, value: $(tasks.a.results.r)}]
finally:
- name: f
`,
		events: []event{ok("a"), ok("f")},
	},
	{
		name: "onError continue",
		pipeline: `
tasks:
- name: a
  onError: continue
  taskSpec: {results: [{name: r}]}
- {name: b, runAfter: [a]}
- name: c
  onError: continue
  params: [{name: p, value: $(tasks.a.results.r)}]
- {name: d, runAfter: [c]}
finally:
- name: f
  params: [{name: p, value: "$(tasks.a.status)/$(tasks.a.reason)/$(tasks.status)"}]
`,
		events: []event{failWith("a", v1.TaskRunReasonFailureIgnored.String()), ok("b"), ok("f")},
	},
	{
		name: "onError continue: a dependent that may not ignore the missing result",
		pipeline: `
tasks:
- name: a
  onError: continue
  taskSpec: {results: [{name: r}]}
- name: b
  params: [{name: p, value: $(tasks.a.results.r)}]
`,
		events: []event{failWith("a", v1.TaskRunReasonFailureIgnored.String())},
	},
	{
		name: "when referencing results of a failed task",
		pipeline: `
tasks:
- name: a
  onError: continue
  taskSpec: {results: [{name: r}]}
- name: want-yes
  when: [{input: $(tasks.a.results.r), operator: in, values: ["yes"]}]
- name: want-no
  when: [{input: $(tasks.a.results.r), operator: in, values: ["no"]}]
- name: b
  taskSpec: {results: [{name: r}]}
- name: after-b
  when: [{input: $(tasks.b.results.r), operator: in, values: ["no"]}]
`,
		events: []event{failWith("a", v1.TaskRunReasonFailureIgnored.String(), str("r", "no")), ok("want-no"), fail("b", str("r", "no"))},
	},
	{
		name: "retries exhausted",
		pipeline: `
tasks:
- {name: a, retries: 2}
- {name: b, runAfter: [a]}
finally:
- name: f
  params: [{name: p, value: "$(tasks.a.status)"}]
`,
		events: []event{failAfterRetries("a", 2), ok("f")},
	},
	{
		name: "a task cancelled on its own",
		pipeline: `
tasks:
- {name: a}
- {name: b}
- {name: c, runAfter: [a]}
`,
		events: []event{cancelled("a"), ok("b")},
	},
	{
		name: "cancel",
		pipeline: `
tasks:
- {name: a}
- name: b
  taskSpec: {results: [{name: r}]}
- {name: c, runAfter: [a]}
finally:
- name: f
results:
- {name: from-b, value: $(tasks.b.results.r)}
`,
		events: []event{ok("b", str("r", "B")), cancelRun, cancelled("a")},
	},
	{
		name: "cancel, then run finally",
		pipeline: `
tasks:
- {name: a}
- {name: b}
- {name: c, runAfter: [a]}
- {name: d}
finally:
- name: f
  params: [{name: p, value: "$(tasks.a.status) $(tasks.status)"}]
`,
		events: []event{ok("d"), cancelRunFinally, cancelled("a"), cancelled("b"), ok("f")},
	},
	{
		name: "stop, then run finally",
		pipeline: `
tasks:
- {name: a}
- {name: c, runAfter: [a]}
finally:
- name: f
`,
		events: []event{stopRunFinally, ok("a"), ok("f")},
	},
	{
		name: "pipeline timeout",
		pipeline: `
tasks:
- {name: a}
- {name: b}
- {name: c, runAfter: [a]}
finally:
- name: f
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(time.Hour)},
		events:   []event{ok("b"), pipelineTimeout, timedOut("a")},
	},
	{
		name: "tasks timeout, then finally",
		pipeline: `
tasks:
- {name: a}
- {name: b}
- {name: c, runAfter: [a]}
finally:
- name: f
  params: [{name: p, value: "$(tasks.a.status) $(tasks.c.status)"}]
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(2 * time.Hour), Tasks: dur(time.Hour)},
		events:   []event{ok("b"), tasksTimeout, timedOut("a"), ok("f")},
	},
	{
		name: "tasks timeout without finally",
		pipeline: `
tasks:
- {name: a}
- {name: b, runAfter: [a]}
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(2 * time.Hour), Tasks: dur(time.Hour)},
		events:   []event{tasksTimeout, timedOut("a")},
	},
	{
		name: "finally timeout",
		pipeline: `
tasks:
- {name: a}
finally:
- {name: f1}
- {name: f2}
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(3 * time.Hour), Finally: dur(time.Hour)},
		events:   []event{ok("a"), ok("f2"), finallyTimeout, timedOut("f1")},
	},
	{
		name: "pipeline results",
		pipeline: `
tasks:
- name: a
  taskSpec:
    results:
    - {name: s}
    - {name: list, type: array}
    - {name: o, type: object, properties: {k: {type: string}}}
- name: skipped
  when: [{input: "x", operator: in, values: ["y"]}]
  taskSpec: {results: [{name: r}]}
- name: failing
  onError: continue
  taskSpec: {results: [{name: r}]}
finally:
- name: f
  taskSpec: {results: [{name: r}]}
results:
- {name: s, value: "$(tasks.a.results.s)-suffix"}
- {name: list, type: array, value: "$(tasks.a.results.list[*])"}
- {name: item, value: "$(tasks.a.results.list[1])"}
- {name: o, type: object, value: "$(tasks.a.results.o[*])"}
- {name: key, value: "$(tasks.a.results.o.k)"}
- {name: from-skipped, value: "$(tasks.skipped.results.r)"}
- {name: from-failed, value: "$(tasks.failing.results.r)"}
- {name: from-finally, value: "$(finally.f.results.r)"}
`,
		events: []event{
			ok("a", str("s", "S"), arr("list", "x", "y"), obj("o", "k", "v")),
			failWith("failing", v1.TaskRunReasonFailureIgnored.String(), str("r", "partial")),
			ok("f", str("r", "fin")),
		},
	},
	{
		name: "pipeline result from a missing result of a succeeded task",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}, {name: other}]}
results:
- {name: out, value: "$(tasks.a.results.r)"}
- {name: other, value: "$(tasks.a.results.other)"}
`,
		events: []event{ok("a", str("other", "o"))},
	},
	{
		name: "CEL when expressions",
		// CEL in when expressions needs the feature flag
		// enable-cel-in-whenexpression, off by default.
		flags: map[string]string{"enable-cel-in-whenexpression": "true"},
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: cel-true
  when: [{cel: "'$(tasks.a.results.r)' == 'yes'"}]
- name: cel-false
  when: [{cel: "'$(tasks.a.results.r)' != 'yes'"}]
- {name: after-false, runAfter: [cel-false]}
- name: cel-and-in
  when: [{cel: "'$(tasks.a.results.r)'.startsWith('y')"}, {input: "$(tasks.a.results.r)", operator: notin, values: ["yes"]}]
finally:
- name: on-completed
  when: [{cel: "'$(tasks.status)' == 'Completed'"}]
- name: on-succeeded
  when: [{cel: "'$(tasks.status)' == 'Succeeded'"}]
- name: on-failure
  when: [{cel: "'$(tasks.a.status)' == 'Failed'"}]
`,
		events: []event{ok("a", str("r", "yes")), ok("cel-true"), ok("after-false"), ok("on-completed")},
	},
	{
		name: "stop, then a running task fails",
		pipeline: `
tasks:
- {name: a}
- {name: b}
- {name: c, runAfter: [a]}
finally:
- name: f
  params: [{name: p, value: "$(tasks.b.status) $(tasks.status)"}]
`,
		events: []event{stopRunFinally, fail("b"), ok("a"), ok("f")},
	},
	{
		name: "array result index out of range in a param",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}]}
- name: b
  params: [{name: p, value: "$(tasks.a.results.list[5])"}]
- {name: c}
`,
		events: []event{ok("a", arr("list", "x", "y")), ok("c")},
	},
	{
		// Tekton computes pipeline results in the reconcile that ends the run:
		// at the timeout, from the tasks done by then.
		name: "pipeline results at a pipeline timeout",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: slow
  taskSpec: {results: [{name: r}]}
finally:
- name: f
  taskSpec: {results: [{name: r}]}
results:
- {name: from-a, value: $(tasks.a.results.r)}
- {name: from-slow, value: $(tasks.slow.results.r)}
- {name: from-f, value: $(finally.f.results.r)}
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(time.Hour)},
		events:   []event{ok("a", str("r", "A")), pipelineTimeout, timedOut("slow")},
	},
	{
		name: "pipeline results after a tasks timeout and finally",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: slow
  taskSpec: {results: [{name: r}]}
finally:
- name: f
  taskSpec: {results: [{name: r}]}
results:
- {name: from-a, value: $(tasks.a.results.r)}
- {name: from-slow, value: $(tasks.slow.results.r)}
- {name: from-f, value: "$(finally.f.results.r)/$(tasks.a.results.r)"}
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(2 * time.Hour), Tasks: dur(time.Hour)},
		events:   []event{ok("a", str("r", "A")), tasksTimeout, timedOut("slow"), ok("f", str("r", "F"))},
	},
	{
		// Unlike a cancel, a graceful cancel reaches the end of the reconcile
		// and computes the pipeline results.
		name: "pipeline results after cancel, then run finally",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: slow
  taskSpec: {results: [{name: r}]}
finally:
- name: f
  taskSpec: {results: [{name: r}]}
results:
- {name: from-a, value: $(tasks.a.results.r)}
- {name: from-f, value: $(finally.f.results.r)}
`,
		events: []event{ok("a", str("r", "A")), cancelRunFinally, cancelled("slow"), ok("f", str("r", "F"))},
	},
	{
		// Every task is resolved on every reconcile, finally and skipped ones
		// too: an index out of range ends the run as soon as the array is known.
		name: "array result index out of range in finally and in a skipped task's when",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}]}
- {name: b}
- name: guarded
  runAfter: [a]
  when:
  - {input: "x", operator: in, values: ["y"]}
  - {input: "$(tasks.a.results.list[1])", operator: in, values: ["y"]}
finally:
- name: f
  params: [{name: p, value: "$(tasks.a.results.list[3])"}]
`,
		events: []event{ok("a", arr("list", "x")), ok("b")},
	},
	{
		name: "pipeline result reading a whole array without [*]",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}, {name: empty, type: array}]}
results:
- {name: first, value: "$(tasks.a.results.list)"}
- {name: none, value: "$(tasks.a.results.empty)"}
`,
		events: []event{ok("a", arr("list", "x", "y"), arr("empty"))},
	},
	{
		name: "pipeline results out of range or missing a key",
		pipeline: `
tasks:
- name: a
  taskSpec:
    results:
    - {name: list, type: array}
    - {name: o, type: object, properties: {k: {type: string}}}
results:
- {name: item, value: "$(tasks.a.results.list[5])"}
- {name: ok, value: "$(tasks.a.results.list[0])"}
`,
		events: []event{ok("a", arr("list", "x"), obj("o", "k", "v"))},
	},
	{
		// PropagateResults: an embedded taskSpec's steps read finished
		// tasks' results directly, in dot form only, and wait for them.
		name: "results propagated into an embedded taskSpec's steps",
		pipeline: `
tasks:
- name: a
  taskSpec:
    results: [{name: s}, {name: list, type: array}, {name: o, type: object, properties: {k: {type: string}}}]
- name: b
  taskSpec:
    steps:
    - name: one
      image: busybox
      script: 'echo "$(tasks.a.results.s) $(tasks.a.results.o.k) $(tasks.a.results.list[0])"'
    - name: two
      image: busybox
      script: |
        echo "$(tasks.a.results.list) $(tasks.a.results['s'])"
- {name: c, runAfter: [b], onError: continue, taskSpec: {results: [{name: r}]}}
finally:
- name: f
  taskSpec:
    steps: [{name: f, image: busybox, script: 'echo $(tasks.a.results.s) $(tasks.c.results.r)'}]
`,
		events: []event{ok("a", str("s", "S"), arr("list", "x", "y"), obj("o", "k", "K")), ok("b"), failWith("c", v1.TaskRunReasonFailureIgnored.String(), str("r", "R")), ok("f")},
	},
	{
		name: "a step reading a result a succeeded task did not emit fails validation",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: b
  taskSpec:
    steps: [{name: s, image: busybox, script: 'echo $(tasks.a.results.r)'}]
- {name: c}
`,
		events: []event{ok("a"), ok("c")},
	},
	{
		name: "onError continue: a step reading the result the failed task did not produce",
		pipeline: `
tasks:
- name: a
  onError: continue
  taskSpec: {results: [{name: r}, {name: q}]}
- name: b
  taskSpec:
    steps: [{name: s, image: busybox, args: ["$(tasks.a.results.q)", "$(tasks.a.results.r)"]}]
finally:
- name: f
  taskSpec:
    steps: [{name: f, image: busybox, script: 'echo $(tasks.a.results.q)'}]
`,
		events: []event{failWith("a", v1.TaskRunReasonFailureIgnored.String(), str("q", "Q")), ok("f")},
	},
}
