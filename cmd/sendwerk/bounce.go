package main

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/bounce"
	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/suppression"
)

// newBounceService builds the bounce intake; with a bounce domain it also returns the VERP
// return paths for platform connectors (nil without one).
func newBounceService(pool *pgxpool.Pool, cfg *config.Config, suppressions *suppression.Service, logger *slog.Logger) (*bounce.Service, message.ReturnPaths, error) {
	if cfg.BounceDomain == "" {
		return bounce.NewService(pool, nil, suppressions, logger), nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(cfg.SecretKey)
	if err != nil {
		return nil, nil, fmt.Errorf("SENDWERK_SECRET_KEY: %w", err)
	}
	tokens := bounce.NewTokens(cfg.BounceDomain, key)
	return bounce.NewService(pool, tokens, suppressions, logger), tokens, nil
}

// startBounceListener starts the SMTP listener of the bounce domain when one is configured.
func startBounceListener(cfg *config.Config, svc *bounce.Service) (*bounce.Listener, error) {
	if cfg.BounceSMTPAddr == "" {
		return nil, nil
	}
	host, _ := os.Hostname()
	if cfg.SMTPHostname != "" {
		host = cfg.SMTPHostname
	}
	l, err := bounce.NewListener(bounce.ListenerConfig{Addr: cfg.BounceSMTPAddr, Hostname: host, Timeout: cfg.SMTPTimeout}, svc)
	if err != nil {
		return nil, err
	}
	return l, l.Start()
}
