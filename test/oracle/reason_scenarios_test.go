package oracle

func init() { scenarios = append(scenarios, reasonScenarios...) }

// reasonScenarios: finally reads the reason of a task whose step failed,
// which Tekton's pod status code gives (StepFailed) and TestRunAgainstTekton
// compares with the reason the supervisor's task runner sets.
var reasonScenarios = []scenario{
	{
		name: "finally reads the reason of a failed task",
		pipeline: `
tasks:
- {name: a}
- {name: b, runAfter: [a]}
- {name: c}
finally:
- name: report
  params:
  - {name: a, value: "$(tasks.a.status)/$(tasks.a.reason)/$(tasks.status)"}
`,
		events: []event{fail("a"), ok("c"), ok("report")},
	},
	{
		name: "finally reads the reason of a task that failed its retries",
		pipeline: `
tasks:
- {name: a, retries: 2}
finally:
- name: report
  params:
  - {name: a, value: "$(tasks.a.status)/$(tasks.a.reason)"}
`,
		events: []event{failAfterRetries("a", 2), ok("report")},
	},
	{
		name: "matrix: finally reads the reason of a failed TaskRun",
		pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b]}]
finally:
- name: report
  params:
  - {name: m, value: "$(tasks.m.status)/$(tasks.m.reason)"}
`,
		events: []event{ok("m-0"), fail("m-1"), ok("report")},
	},
}
