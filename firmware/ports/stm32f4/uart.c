/* STM32F405/407 (Netduino Plus 2; QEMU netduinoplus2): the clock tree and a polled USART console.
 * Registers and bits from ST RM0090 (STM32F405/415, 407/417, 427/437, 429/439 reference manual):
 * RCC (section 7.3), FLASH_ACR (3.9), PWR_CR (5.4), GPIO (8.4), USART (30.6); addresses from the
 * STM32F405xx datasheet DS8626, memory map (figure 18, table 10).
 *
 * The console is USART1 or USART6, chosen by the board file's console.base (ESL_CONSOLE_BASE):
 *   USART6 0x40011400: PC6 TX, PC7 RX, AF8. The Netduino Plus 2's D1/D0 header pins (MicroPython's
 *                      NETDUINO_PLUS_2 board: D0 = PC7, D1 = PC6). QEMU 7.2 connects it to the 6th
 *                      -serial (hw/arm/stm32f405_soc.c: usart_addr[5]).
 *   USART1 0x40011000: PA9 TX, PA10 RX, AF7. The ST bootloader's USART and most STM32F4 boards'
 *                      console; QEMU's first -serial, Renode stm32f4.repl's sysbus.usart1. On the
 *                      Netduino Plus 2 PA9 senses USB VBUS and PA10 drives the blue LED: not there.
 * Both sit on APB2. 8 data bits, no parity, 1 stop bit, 115200 baud, no flow control.
 *
 * Clocks on silicon: the part resets on HSI (16 MHz RC). esl_port_init switches to the PLL fed from
 * HSI (any STM32F405 board has it; the Netduino Plus 2's 25 MHz HSE is not needed): PLLM 8 (2 MHz
 * VCO input), PLLN 168 (336 MHz VCO), PLLP 2 -> SYSCLK 168 MHz, PLLQ 7 -> 48 MHz; AHB /1 = 168 MHz,
 * APB1 /4 = 42 MHz, APB2 /2 = 84 MHz (RM0090 7.2: APB1 <= 42 MHz, APB2 <= 84 MHz); flash 5 wait
 * states at 150-168 MHz and 2.7-3.6 V (RM0090 table 10), prefetch and both caches on; regulator
 * scale 1 (PWR_CR VOS, its reset value on the F405). Every wait is bounded: a part that does not
 * answer stays on HSI at 16 MHz, and the baud rate is set for the clock actually running.
 *
 * QEMU 7.2 has no RCC, flash interface or GPIO model (unimplemented devices: reads are 0, writes
 * are dropped; hw/arm/stm32f405_soc.c) and clocks the CPU at a fixed 168 MHz (hw/arm/netduinoplus2.c).
 * The RCC's HSIRDY bit is set out of reset on silicon (RM0090 7.3.1: RCC_CR reset value
 * 0x0000 XX83); reading 0 there means no RCC: the clock setup is skipped. Its USART model
 * (hw/char/stm32f2xx_usart.c) ignores BRR and accepts input only while CR1 has UE and RE set. */
#include "esl_port.h"

#ifndef ESL_CONSOLE_BASE
#define ESL_CONSOLE_BASE 0x40011400u
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_CR       REG(0x40023800u)
#define RCC_PLLCFGR  REG(0x40023804u)
#define RCC_CFGR     REG(0x40023808u)
#define RCC_AHB1ENR  REG(0x40023830u)
#define RCC_APB1ENR  REG(0x40023840u)
#define RCC_APB2ENR  REG(0x40023844u)
#define FLASH_ACR    REG(0x40023C00u)
#define PWR_CR       REG(0x40007000u)

#define RCC_CR_HSIRDY   (1u << 1)
#define RCC_CR_PLLON    (1u << 24)
#define RCC_CR_PLLRDY   (1u << 25)
#define RCC_CFGR_SW_PLL 0x2u
#define RCC_CFGR_SWS    (0x3u << 2)
#define RCC_CFGR_SWS_PLL (0x2u << 2)

/* PLLSRC 0 (HSI), PLLM 8, PLLN 168, PLLP 2 (field 0), PLLQ 7 */
#define PLLCFGR_168MHZ  (8u | (168u << 6) | (0u << 16) | (0u << 22) | (7u << 24))
/* HPRE /1, PPRE1 /4 (0b101), PPRE2 /2 (0b100) */
#define CFGR_PRESCALERS ((0x5u << 10) | (0x4u << 13))
/* LATENCY 5 WS, PRFTEN, ICEN, DCEN */
#define FLASH_ACR_168MHZ (5u | (1u << 8) | (1u << 9) | (1u << 10))

#define HSI_HZ     16000000u
#define APB2_HZ_PLL 84000000u
#define BAUD       115200u
#define WAIT_LIMIT 100000u

#define GPIOA_BASE 0x40020000u
#define GPIOC_BASE 0x40020800u
#define GPIO_MODER(b)   REG((b) + 0x00u)
#define GPIO_OSPEEDR(b) REG((b) + 0x08u)
#define GPIO_PUPDR(b)   REG((b) + 0x0Cu)
#define GPIO_AFRL(b)    REG((b) + 0x20u)
#define GPIO_AFRH(b)    REG((b) + 0x24u)

#if ESL_CONSOLE_BASE == 0x40011400u          /* USART6 on PC6/PC7, AF8 */
#define CON_GPIO      GPIOC_BASE
#define CON_GPIO_EN   (1u << 2)             /* RCC_AHB1ENR GPIOCEN */
#define CON_USART_EN  (1u << 5)             /* RCC_APB2ENR USART6EN */
#define CON_TX        6u
#define CON_RX        7u
#define CON_AF        8u
#elif ESL_CONSOLE_BASE == 0x40011000u        /* USART1 on PA9/PA10, AF7 */
#define CON_GPIO      GPIOA_BASE
#define CON_GPIO_EN   (1u << 0)             /* RCC_AHB1ENR GPIOAEN */
#define CON_USART_EN  (1u << 4)             /* RCC_APB2ENR USART1EN */
#define CON_TX        9u
#define CON_RX        10u
#define CON_AF        7u
#else
#error "firmware/ports/stm32f4: console.base must be USART1 (0x40011000) or USART6 (0x40011400)"
#endif

#define USART_SR   REG(ESL_CONSOLE_BASE + 0x00u)   /* bit 5 RXNE, bit 7 TXE */
#define USART_DR   REG(ESL_CONSOLE_BASE + 0x04u)
#define USART_BRR  REG(ESL_CONSOLE_BASE + 0x08u)
#define USART_CR1  REG(ESL_CONSOLE_BASE + 0x0Cu)   /* bit 13 UE, bit 3 TE, bit 2 RE */
#define USART_CR2  REG(ESL_CONSOLE_BASE + 0x10u)
#define USART_CR3  REG(ESL_CONSOLE_BASE + 0x14u)
#define SR_RXNE (1u << 5)
#define SR_TXE  (1u << 7)

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    for (uint32_t i = 0; i < WAIT_LIMIT; i++) {
        if ((*reg & mask) == value) return 1;
    }
    return 0;
}

/* The PLL at 168 MHz from HSI; returns the APB2 clock that results (HSI if anything fails). */
static uint32_t clocks_init(void)
{
    if (!(RCC_CR & RCC_CR_HSIRDY)) return HSI_HZ;          /* no RCC: an emulator */
    RCC_APB1ENR |= 1u << 28;                               /* PWREN */
    PWR_CR |= 1u << 14;                                    /* VOS: scale 1 */
    FLASH_ACR = FLASH_ACR_168MHZ;                          /* wait states before the faster clock */
    if (!wait_set(&FLASH_ACR, 0x7u, 5u)) return HSI_HZ;
    RCC_CFGR = (RCC_CFGR & ~((0xFu << 4) | (0x7u << 10) | (0x7u << 13))) | CFGR_PRESCALERS;
    RCC_CR &= ~RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, 0)) return HSI_HZ;
    RCC_PLLCFGR = PLLCFGR_168MHZ;
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) return HSI_HZ / 2u;   /* APB2 /2 on HSI */
    RCC_CFGR = (RCC_CFGR & ~0x3u) | RCC_CFGR_SW_PLL;
    if (!wait_set(&RCC_CFGR, RCC_CFGR_SWS, RCC_CFGR_SWS_PLL)) return HSI_HZ / 2u;
    return APB2_HZ_PLL;
}

void esl_port_init(void)
{
    const uint32_t apb2_hz = clocks_init();
    esl_cycles_init();
    RCC_AHB1ENR |= CON_GPIO_EN;
    RCC_APB2ENR |= CON_USART_EN;
    (void)RCC_APB2ENR;                                     /* the enable takes effect (RM0090 7.3.13) */
    const uint32_t t2 = 2u * CON_TX, r2 = 2u * CON_RX;
    GPIO_MODER(CON_GPIO) = (GPIO_MODER(CON_GPIO) & ~((3u << t2) | (3u << r2))) | (2u << t2) | (2u << r2);
    GPIO_OSPEEDR(CON_GPIO) |= (2u << t2) | (2u << r2);    /* fast */
    GPIO_PUPDR(CON_GPIO) = (GPIO_PUPDR(CON_GPIO) & ~((3u << t2) | (3u << r2))) | (1u << r2);   /* RX pull-up */
#if CON_TX < 8
    GPIO_AFRL(CON_GPIO) = (GPIO_AFRL(CON_GPIO) & ~(0xFu << (4u * CON_TX))) | (CON_AF << (4u * CON_TX));
#else
    GPIO_AFRH(CON_GPIO) = (GPIO_AFRH(CON_GPIO) & ~(0xFu << (4u * (CON_TX - 8u)))) | (CON_AF << (4u * (CON_TX - 8u)));
#endif
#if CON_RX < 8
    GPIO_AFRL(CON_GPIO) = (GPIO_AFRL(CON_GPIO) & ~(0xFu << (4u * CON_RX))) | (CON_AF << (4u * CON_RX));
#else
    GPIO_AFRH(CON_GPIO) = (GPIO_AFRH(CON_GPIO) & ~(0xFu << (4u * (CON_RX - 8u)))) | (CON_AF << (4u * (CON_RX - 8u)));
#endif
    USART_CR1 = 0;
    USART_CR2 = 0;                                         /* 1 stop bit */
    USART_CR3 = 0;                                         /* no flow control, no DMA */
    USART_BRR = (apb2_hz + BAUD / 2u) / BAUD;              /* oversampling by 16: BRR = f / baud */
    USART_CR1 = (1u << 13) | (1u << 3) | (1u << 2);        /* UE, TE, RE; 8 data bits, no parity */
}

int32_t esl_port_getc(void)
{
    /* Reading SR then DR also clears an overrun (ORE) on silicon. */
    return (USART_SR & SR_RXNE) ? (int32_t)(USART_DR & 0xFFu) : -1;
}

int32_t esl_port_getc_blocking(void)
{
    while (!(USART_SR & SR_RXNE)) {
    }
    return (int32_t)(USART_DR & 0xFFu);
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        while (!(USART_SR & SR_TXE)) {
        }
        USART_DR = data[i];
    }
}
