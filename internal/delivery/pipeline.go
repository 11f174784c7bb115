package delivery

import (
	"context"
	"fmt"
	"time"
)

// RFC 2920 PIPELINING: to an upstream that offers it, MAIL, every RCPT and DATA go out in
// one write and the replies are read in order, one round trip where a message to n
// recipients otherwise takes n+2 before its body. go-mail's client sends one command and
// waits for its reply, so the commands are written on its textproto connection (exported
// for extensions) and the replies read from it; go-mail's own commands are not used within
// the group, so its request sequencing stays in step.
//
// Results and their classification are those of the one-by-one transaction: per-recipient
// replies, stage mail, rcpt or data, and a message sent to nobody when any recipient is
// refused. That last one decides when DATA may join the group. With one recipient it may:
// a refused recipient leaves the upstream none, so it refuses DATA too (RFC 2920 3.1) and
// the transaction is reset as after any refused recipient. With several, an upstream that
// refused some and accepted others would answer a pipelined DATA with 354 and wait for the
// message, which must not reach the recipients it accepted, and a client cannot withdraw a
// DATA it sent (only close the connection before the final dot). So a message to several
// recipients sends MAIL and RCPT as one group and DATA after their replies: one round trip
// more than a lone recipient's, and a refused recipient still costs no connection.

// transactPipelined is transact for an upstream that offers PIPELINING. DATA joins the
// group for a lone recipient when gate is already done; otherwise MAIL and RCPT go as one
// group, and DATA follows on its own once gate is done.
func (c *conn) transactPipelined(ctx context.Context, timeout time.Duration, env Envelope, raw []byte, gate Gate, utf8 bool) (*Result, error) {
	withData := len(env.To) == 1 && isOpen(gate)
	if err := c.raw.setDeadline(ctx, timeout); err != nil {
		return nil, &stageError{stage: StageMail, err: err}
	}
	if err := c.writeGroup(env, utf8, withData); err != nil {
		c.healthy = false
		return nil, &stageError{stage: StageMail, err: err}
	}
	if _, _, err := c.client.Text.ReadResponse(250); err != nil {
		c.drain(ctx, timeout, err, len(env.To), withData, false)
		return nil, &stageError{stage: StageMail, err: c.track(err)}
	}
	rcpts, rejected, err := c.readRcpts(ctx, timeout, env.To)
	if err != nil {
		// The connection failed or the upstream is closing it (421): nothing more comes.
		return nil, &stageError{stage: StageRcpt, recipients: rcpts, err: err}
	}
	if !withData {
		return c.finishUngated(ctx, timeout, raw, gate, rcpts, rejected)
	}
	if len(rejected) > 0 {
		// The upstream has no recipient left and refuses DATA; were it to answer 354
		// anyway, drain retires the connection before a byte of the message.
		c.drain(ctx, timeout, nil, 0, true, true)
		return nil, &stageError{stage: StageRcpt, recipients: rcpts, err: &rcptRejected{results: rcpts, errs: rejected}}
	}
	if _, _, err := c.client.Text.ReadResponse(354); err != nil {
		c.dataRefused(ctx, timeout, err)
		return nil, &stageError{stage: StageData, recipients: rcpts, err: c.track(err)}
	}
	reply, err := c.body(ctx, timeout, raw)
	if err != nil {
		return nil, &stageError{stage: StageData, recipients: rcpts, err: err}
	}
	return c.delivered(reply, rcpts), nil
}

// finishUngated ends a group sent without DATA: RSET after a refused recipient, else DATA
// once gate is done.
func (c *conn) finishUngated(ctx context.Context, timeout time.Duration, raw []byte, gate Gate, rcpts []RecipientResult, rejected []error) (*Result, error) {
	if len(rejected) > 0 {
		c.reset(ctx, timeout)
		return nil, &stageError{stage: StageRcpt, recipients: rcpts, err: &rcptRejected{results: rcpts, errs: rejected}}
	}
	return c.dataAfter(ctx, timeout, raw, gate, rcpts)
}

// isOpen reports a gate that holds nothing back (none, or one already done without error).
func isOpen(gate Gate) bool {
	if gate == nil {
		return true
	}
	select {
	case <-gate.Done():
		return gate.Err() == nil
	default:
		return false
	}
}

// writeGroup writes MAIL FROM, every RCPT TO and, withData, DATA, and flushes them at once.
// MAIL's parameters are those go-mail's Mail would send.
func (c *conn) writeGroup(env Envelope, utf8, withData bool) error {
	params := ""
	if ok, _ := c.client.Extension("8BITMIME"); ok {
		params += " BODY=8BITMIME"
	}
	if ok, _ := c.client.Extension("SMTPUTF8"); ok && utf8 {
		params += " SMTPUTF8"
	}
	w := c.client.Text.W
	_, _ = fmt.Fprintf(w, "MAIL FROM:<%s>%s\r\n", env.From, params)
	for _, to := range env.To {
		_, _ = fmt.Fprintf(w, "RCPT TO:<%s>\r\n", to)
	}
	if withData {
		_, _ = w.WriteString("DATA\r\n")
	}
	return w.Flush()
}

// readRcpts reads the RCPT replies in order. An error means the group cannot go on: the
// connection failed, or the upstream answered 421 and closes it.
func (c *conn) readRcpts(ctx context.Context, timeout time.Duration, to []string) ([]RecipientResult, []error, error) {
	results := make([]RecipientResult, 0, len(to))
	var rejected []error
	for _, addr := range to {
		if err := c.raw.setDeadline(ctx, timeout); err != nil {
			c.healthy = false
			return results, nil, err
		}
		_, _, err := c.client.Text.ReadResponse(25)
		err = c.track(err)
		reply, isReply := replyOf(err)
		switch {
		case err == nil:
			results = append(results, RecipientResult{Address: addr, Accepted: true})
		case !isReply:
			return results, nil, err
		case reply.Code == 421:
			results = append(results, RecipientResult{Address: addr, Reply: &reply})
			return results, nil, &rcptRejected{results: results, errs: append(rejected, err)}
		default:
			results = append(results, RecipientResult{Address: addr, Reply: &reply})
			rejected = append(rejected, err)
		}
	}
	return results, rejected, nil
}

// drain reads the replies still due after the group went wrong, so the connection stays
// in step for the next message: rcpts RCPT replies and, withData, DATA's. A DATA answered
// 354 leaves the upstream waiting for a message that must not be sent: the connection is
// then retired (closed, never given the final dot). After a failed MAIL nothing needs
// resetting; after accepted MAIL (mailAccepted) the transaction is reset. cause is the
// error that ended the group; after a network error or a 421 nothing more is read.
func (c *conn) drain(ctx context.Context, timeout time.Duration, cause error, rcpts int, withData, mailAccepted bool) {
	if r, ok := replyOf(cause); cause != nil && (!ok || r.Code == 421) {
		c.healthy = false
		return
	}
	for range rcpts {
		if !c.readDue(ctx, timeout, 0) {
			return
		}
	}
	if withData && !c.readDue(ctx, timeout, 354) {
		return
	}
	if mailAccepted {
		c.reset(ctx, timeout)
	}
}

// readDue reads one reply that is due and reports whether the connection is still usable:
// not after a network error, a 421, or a reply with the code retire.
func (c *conn) readDue(ctx context.Context, timeout time.Duration, retire int) bool {
	if err := c.raw.setDeadline(ctx, timeout); err != nil {
		c.healthy = false
		return false
	}
	code, _, err := c.client.Text.ReadResponse(0) // 0: any code is a reply, not an error
	if err != nil || code == 421 || (retire != 0 && code == retire) {
		c.healthy = false
		return false
	}
	return true
}
