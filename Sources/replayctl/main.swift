print("replayctl")
