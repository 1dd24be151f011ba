from platformio.public import PlatformBase


class EdgeslmPlatform(PlatformBase):
    """Everything comes from the system (arm-none-eabi-gcc) and the board JSON; nothing to install."""

    def is_embedded(self):
        return True
