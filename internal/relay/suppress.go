package relay

import "github.com/emersion/go-smtp"

// checkRecipient asks the pipeline whether the tenant's suppression list has the address;
// nil lets it through.
func (s *session) checkRecipient(to string) *smtp.SMTPError {
	if s.cred == nil {
		return nil
	}
	ctx, cancel := s.context()
	defer cancel()
	err := s.srv.msgs.CheckRecipient(ctx, s.cred.TenantID, to)
	if err == nil {
		return nil
	}
	reply := s.reply(err, "recipient")
	s.log.Info("smtp recipient refused", "to", clip(to, 320), "code", reply.Code, "reply", reply.Message)
	return reply
}
