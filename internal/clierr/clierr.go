// Package clierr defines the errors that choose the process exit code of `ci`.
//
// Exit codes: 0 success, 1 a stage, build or push failed, 2 usage or
// configuration error (nothing was changed).
package clierr

import (
	"errors"
	"fmt"
)

// Exit codes used by every ci command.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// UsageError is a usage or configuration error: bad flag values, a flake that
// does not exist, a missing token. Its message names the fix. Nothing has been
// changed when it is returned.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Usage wraps err as a UsageError (nil stays nil).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// FailedError reports that work ran and some of it failed (a build, a stage,
// a push). The details have already been reported; Error is a one-line summary.
type FailedError struct{ Msg string }

func (e *FailedError) Error() string { return e.Msg }

// Failedf returns a FailedError with a formatted message.
func Failedf(format string, args ...any) error {
	return &FailedError{Msg: fmt.Sprintf(format, args...)}
}

// Code maps an error to the process exit code.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var u *UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitFailed
}
