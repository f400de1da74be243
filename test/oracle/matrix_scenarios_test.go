package oracle

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// Matrixed pipeline tasks (docs/matrix.md): a plan task per TaskRun, named
// after the pipeline task and its index ("m-0"), which the events name.
func init() { scenarios = append(scenarios, matrixScenarios...) }

// twelveValues is a matrix param with twelve values: TaskRun names end in
// -0 to -11, and Tekton orders them as strings (-0, -1, -10, -11, -2, ...).
func twelveValues() string {
	var vs []string
	for i := range 12 {
		vs = append(vs, fmt.Sprintf("v%d", i))
	}
	return "[" + strings.Join(vs, ", ") + "]"
}

var matrixScenarios = []scenario{
	{
		name: "matrix: dependents wait for every TaskRun",
		pipeline: `
tasks:
- name: m
  params: [{name: common, value: c}]
  matrix:
    params:
    - {name: platform, value: [linux, mac]}
    - {name: browser, value: [chrome, safari]}
    include:
    - name: extra
      params: [{name: platform, value: linux}, {name: url, value: u}]
    - name: new
      params: [{name: browser, value: edge}]
  taskSpec:
    params: [{name: url, default: none}, {name: platform, default: any}]
- {name: b, runAfter: [m]}
- {name: c}
`,
		events: []event{ok("m-2"), ok("c"), ok("m-0"), ok("m-4"), ok("m-3"), ok("m-1"), ok("b")},
	},
	{
		name: "matrix: one combination keeps the plain TaskRun name",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [only]}]
- {name: b, runAfter: [m]}
`,
		events: []event{ok("m"), ok("b")},
	},
	{
		name: "matrix: a failed TaskRun fails the task once all ended",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b, c]}]
- {name: early}
- {name: late, runAfter: [early]}
- {name: after, runAfter: [m]}
finally:
- name: report
  params:
  - {name: status, value: "$(tasks.m.status)/$(tasks.m.reason)/$(tasks.status)"}
`,
		events: []event{fail("m-1"), ok("early"), ok("m-0"), failWith("m-2", v1.TaskRunReasonTimedOut.String()), ok("late"), ok("report")},
	},
	{
		name: "matrix: onError continue",
		pipeline: `
tasks:
- name: m
  onError: continue
  matrix:
    params: [{name: x, value: [foo, bar]}]
- {name: b, runAfter: [m]}
finally:
- name: report
  params: [{name: reason, value: "$(tasks.m.status)/$(tasks.m.reason)"}]
`,
		events: []event{ok("m-0"), failWith("m-1", v1.TaskRunReasonFailureIgnored.String()), ok("b"), ok("report")},
	},
	{
		name: "matrix: results are arrays in TaskRun name order",
		pipeline: `
results:
- {name: all, value: "$(tasks.m.results.r[*])"}
- {name: second, value: "$(tasks.m.results.r[1])"}
tasks:
- name: m
  matrix:
    params: [{name: x, value: ` + twelveValues() + `}]
  taskSpec: {results: [{name: r}, {name: rare}]}
- name: consume
  params:
  - {name: list, value: "$(tasks.m.results.r[*])"}
  - {name: rare, value: "$(tasks.m.results.rare[*])"}
  - {name: count, value: "$(tasks.m.matrix.length)"}
  - {name: rare-count, value: "$(tasks.m.matrix.rare.length)"}
`,
		events: []event{
			ok("m-0", str("r", "r0")), ok("m-1", str("r", "r1"), str("rare", "!")), ok("m-2", str("r", "r2")), ok("m-3", str("r", "r3")),
			ok("m-4", str("r", "r4")), ok("m-5", str("r", "r5")), ok("m-6", str("r", "r6")), ok("m-7", str("r", "r7")),
			ok("m-8", str("r", "r8")), ok("m-9", str("r", "r9")), ok("m-10", str("r", "r10")), ok("m-11", str("r", "r11"), str("rare", "!")),
			ok("consume"),
		},
	},
	{
		name: "matrix: a matrix consumes another's results only through the pipeline results",
		pipeline: `
results:
- {name: all, value: "$(tasks.m.results.r[*])"}
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b]}]
  taskSpec: {results: [{name: r}]}
`,
		events: []event{ok("m-0", str("r", "ra")), ok("m-1", str("r", "rb"))},
	},
	{
		name: "matrix: a result only some TaskRuns produced",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b]}]
  taskSpec: {results: [{name: r}]}
- name: consume
  params: [{name: list, value: "$(tasks.m.results.r[*])"}]
`,
		events: []event{ok("m-1", str("r", "rb")), ok("m-0"), ok("consume")},
	},
	{
		name: "matrix: when skips the whole task",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: r}]}
- name: m
  when: [{input: "$(tasks.a.results.r)", operator: in, values: ["go"]}]
  matrix:
    params: [{name: x, value: [a, b]}]
- {name: after, runAfter: [m]}
finally:
- name: report
  params: [{name: s, value: "$(tasks.m.status)"}]
`,
		events: []event{ok("a", str("r", "stop")), ok("after"), ok("report")},
	},
	{
		name: "matrix: an empty array param skips the task and its dependents",
		pipeline: `
params:
- {name: none, type: array, default: []}
tasks:
- name: m
  matrix:
    params: [{name: x, value: []}, {name: z, value: [a]}]
- {name: after, runAfter: [m]}
- name: from-param
  matrix:
    params: [{name: x, value: "$(params.none[*])"}]
- {name: other}
finally:
- name: f
  matrix:
    params: [{name: x, value: []}]
- name: g
  matrix:
    params: [{name: x, value: [a, b]}]
`,
		events: []event{ok("other"), ok("g-1"), ok("g-0")},
	},
	{
		name: "matrix: retries per TaskRun",
		pipeline: `
tasks:
- name: m
  retries: 2
  params: [{name: retries, value: $(context.pipelineTask.retries)}]
  matrix:
    params: [{name: x, value: [a, b]}]
- {name: after, runAfter: [m]}
`,
		events: []event{failAfterRetries("m-0", 2), event{kind: evFinish, task: "m-1", end: end{kind: succeeded, retries: 1}}},
	},
	{
		name: "matrix: cancelled while its TaskRuns run",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b, c]}]
- {name: after, runAfter: [m]}
finally:
- {name: f}
`,
		events: []event{ok("m-0"), cancelRun, cancelled("m-1"), cancelled("m-2")},
	},
	{
		name: "matrix: tasks timeout cancels its TaskRuns, finally runs",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b]}]
- {name: after, runAfter: [m]}
finally:
- name: f
  params: [{name: s, value: "$(tasks.m.status)/$(tasks.m.reason)"}]
`,
		timeouts: &v1.TimeoutFields{Pipeline: dur(time.Hour), Tasks: dur(time.Hour / 2)},
		events:   []event{ok("m-0"), tasksTimeout, timedOut("m-1"), ok("f")},
	},
	{
		name: "matrix: in finally with an include of its own",
		pipeline: `
tasks:
- {name: a}
finally:
- name: f
  params: [{name: s, value: "$(tasks.a.status)"}]
  matrix:
    include:
    - name: one
      params: [{name: x, value: "1"}, {name: y, value: "2"}]
    - name: two
      params: [{name: x, value: "3"}]
`,
		events: []event{fail("a"), ok("f-1"), fail("f-0")},
	},
	{
		name: "run-time matrix: fanned out from results when it starts",
		pipeline: `
results:
- {name: all, value: "$(tasks.m.results.out[*])"}
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}, {name: s}]}
- name: m
  params: [{name: common, value: "$(tasks.a.results.s)"}]
  matrix:
    params:
    - {name: x, value: "$(tasks.a.results.list[*])"}
    - {name: w, value: [one, two]}
    include:
    - name: extra
      params: [{name: x, value: q}, {name: z, value: "$(tasks.a.results.s)"}]
  taskSpec:
    params: [{name: z, default: none}]
    results: [{name: out}]
- name: after
  params: [{name: outs, value: "$(tasks.m.results.out[*])"}, {name: count, value: "$(tasks.m.matrix.out.length)"}]
`,
		events: []event{
			ok("a", arr("list", "p", "q", "r"), str("s", "S")),
			ok("m-3", str("out", "3")), ok("m-0", str("out", "0")), ok("m-5"), ok("m-1", str("out", "1")),
			ok("m-2", str("out", "2")), ok("m-4", str("out", "4")), ok("after"),
		},
	},
	{
		name: "run-time matrix: one combination keeps the plain TaskRun name",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}]}
- name: m
  matrix:
    params: [{name: x, value: "$(tasks.a.results.list[*])"}]
- {name: after, runAfter: [m]}
`,
		events: []event{ok("a", arr("list", "only")), ok("m"), ok("after")},
	},
	{
		name: "run-time matrix: an empty array result skips it and its dependents",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}]}
- name: m
  matrix:
    params: [{name: x, value: "$(tasks.a.results.list[*])"}]
- {name: after, runAfter: [m]}
- {name: other, runAfter: [a]}
finally:
- name: f
  matrix:
    params: [{name: x, value: "$(tasks.a.results.list[*])"}]
`,
		events: []event{ok("a", arr("list")), ok("other")},
	},
	{
		name: "run-time matrix: a string where an array belongs fails the run",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: s}]}
- name: b
  taskSpec: {results: [{name: s}]}
- name: m
  matrix:
    params: [{name: x, value: "$(tasks.a.results.s)"}]
- {name: c}
`,
		events: []event{ok("a", str("s", "S")), ok("c"), ok("b", str("s", "T"))},
	},
	{
		name: "run-time matrix: in finally, from a DAG task's results",
		pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: list, type: array}]}
finally:
- name: f
  params: [{name: s, value: "$(tasks.a.status)"}]
  matrix:
    params: [{name: x, value: "$(tasks.a.results.list[*])"}]
`,
		events: []event{fail("a", arr("list", "u", "v")), ok("f-1"), fail("f-0")},
	},
	{
		name: "run-time matrix: a result its parent, whose failure is ignored, did not produce",
		pipeline: `
tasks:
- name: a
  onError: continue
  taskSpec: {results: [{name: list, type: array}]}
- name: m
  matrix:
    params: [{name: x, value: "$(tasks.a.results.list[*])"}]
- {name: c}
`,
		events: []event{failWith("a", v1.TaskRunReasonFailureIgnored.String()), ok("c")},
	},
	{
		name: "matrix: context variables, the first of each param deciding",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b, c]}]
  taskSpec: {results: [{name: out}]}
- {name: plain}
- name: c
  runAfter: [m, plain]
  params:
  - {name: both, value: "$(tasks.m.matrix.length)/$(tasks.m.matrix.out.length)"}
  - {name: plain, value: "$(tasks.plain.matrix.length)"}
- name: d
  runAfter: [m]
  params:
  - {name: both, value: "$(tasks.m.matrix.length)/$(tasks.m.matrix.out.length)"}
  - {name: out, value: "$(tasks.m.matrix.out.length)"}
finally:
- name: f
  params: [{name: out, value: "$(tasks.m.matrix.out.length)-$(tasks.m.matrix.length)"}]
`,
		events: []event{ok("m-0", str("out", "0")), ok("m-2", str("out", "2")), ok("plain"), ok("m-1"), ok("c"), ok("d"), ok("f")},
	},
}
