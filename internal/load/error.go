package load

import "fmt"

// Error is invalid input: it names the document and the field at fault.
// Commands print it and exit with code 2; nothing runs.
type Error struct {
	// Doc names the document: "file.yaml#2 (Pipeline/build)"; empty when the
	// fault is not in one document (a missing Task, say).
	Doc string
	// Field is the path of the field at fault, e.g. "spec.tasks[1].taskRef.name".
	Field string
	Msg   string
}

func (e *Error) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Doc != "" {
		s = e.Doc + ": " + s
	}
	return s
}

// Errorf builds an *Error.
func Errorf(doc, field, format string, args ...any) *Error {
	return &Error{Doc: doc, Field: field, Msg: fmt.Sprintf(format, args...)}
}
