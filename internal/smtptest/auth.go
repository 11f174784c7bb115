package smtptest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/emersion/go-smtp"
)

var errUnexpectedResponse = errors.New("smtptest: unexpected SASL response")

// loginServer is the server side of AUTH LOGIN, which go-sasl does not implement: it asks
// for the user name, then the password (either may come as the initial response).
type loginServer struct {
	authenticate func(user, pass string) error
	step         int
	user         string
}

// Next implements sasl.Server.
func (a *loginServer) Next(response []byte) ([]byte, bool, error) {
	a.step++
	switch {
	case a.step == 1 && len(response) == 0:
		return []byte("Username:"), false, nil
	case a.step == 1 || a.step == 2 && a.user == "":
		a.user = string(response)
		return []byte("Password:"), false, nil
	case a.step <= 3:
		return nil, true, a.authenticate(a.user, string(response))
	}
	return nil, true, errUnexpectedResponse
}

// cramMD5Server is the server side of AUTH CRAM-MD5 (RFC 2195): it sends a challenge and
// expects "user hex(hmac-md5(password, challenge))".
type cramMD5Server struct {
	users     map[string]string
	onSuccess func(user string)
	challenge string
}

// newCRAMMD5Server prepares a fresh random challenge.
func newCRAMMD5Server(users map[string]string, onSuccess func(user string)) *cramMD5Server {
	return &cramMD5Server{users: users, onSuccess: onSuccess, challenge: "<" + rand.Text() + "@" + Domain + ">"}
}

// Next implements sasl.Server.
func (a *cramMD5Server) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte(a.challenge), false, nil
	}
	user, digest, ok := strings.Cut(string(response), " ")
	if !ok {
		return nil, true, errUnexpectedResponse
	}
	pass, known := a.users[user]
	mac := hmac.New(md5.New, []byte(pass))
	mac.Write([]byte(a.challenge))
	want := hex.EncodeToString(mac.Sum(nil))
	if !known || !hmac.Equal([]byte(want), []byte(strings.ToLower(digest))) {
		return nil, true, smtp.ErrAuthFailed
	}
	a.onSuccess(user)
	return nil, true, nil
}
