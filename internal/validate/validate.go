// Package validate carries field-level rule violations from domain packages to the API edge,
// where they become a 422 problem with errors[] naming each field.
package validate

import "strings"

// FieldError is one rule a field broke.
type FieldError struct {
	Field   string
	Message string
}

// Error is a set of field errors. Domain packages return it for bad input they detect beyond
// what the OpenAPI schema can express (a CIDR that does not parse, a time in the past).
type Error struct {
	Fields []FieldError
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Add records a violation.
func (e *Error) Add(field, message string) { e.Fields = append(e.Fields, FieldError{field, message}) }

// Err returns e when it holds violations and nil otherwise, so callers can end with `return v.Err()`.
func (e *Error) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Field returns an Error with a single violation.
func Field(field, message string) *Error {
	return &Error{Fields: []FieldError{{field, message}}}
}
