"""Services on the module besides MQTT: the network (SIM, registration, PDP context), the
HTTP(S) client and TLS (SSL contexts and the files they use)."""
