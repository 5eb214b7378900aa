"""What the stand-ins for the world share, and the driver never uses: a pseudo-terminal that
another program opens as its serial port (the emulator, the recording proxy, the replay
server) and MQTT packets as the emulated module's client and the cloud twin's front and
broker write them. The driver's own codec (AT) shares nothing with these."""
